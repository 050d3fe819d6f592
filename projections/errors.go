package projections

import (
	"errors"
	"fmt"
	"strings"
)

// Errors shared by the runtime, rebuilds and time travel, so that one error map at the edge
// knows them whichever component answered.
var (
	// ErrUnknownProjection: no projection of that name runs here.
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrClosed: the component asked (time travel, rebuilds) was closed, as the process
	// stops; the same question asked again of a running process succeeds.
	ErrClosed = errors.New("closed")
	// ErrLockTimeout: a statement waited longer than LockTimeout for a lock held by another
	// transaction (PostgreSQL's lock_timeout, SQLSTATE 55P03) and gave up; the work that ran
	// it is tried again later.
	ErrLockTimeout = errors.New("gave up waiting for a lock")
)

// LockTimeout bounds how long a statement of a drop or of a time-travel build waits for a
// lock held by another transaction (Features.BoundedLockWait) before it fails with
// ErrLockTimeout, so that no wait for a lock lasts, whoever holds it: a wait the database
// cannot see as a deadlock (one link of the cycle in a program) ends there.
const LockTimeout = DropLockTimeout

// WrapLockTimeout wraps an error of PostgreSQL's lock_timeout with ErrLockTimeout.
func WrapLockTimeout(err error) error {
	if err != nil && !errors.Is(err, ErrLockTimeout) && strings.Contains(err.Error(), "SQLSTATE 55P03") {
		return fmt.Errorf("%w (waited %s): %w", ErrLockTimeout, LockTimeout, err)
	}
	return err
}
