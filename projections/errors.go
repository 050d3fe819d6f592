package projections

import "errors"

// Errors shared by the runtime, rebuilds and time travel, so that one error map at the edge
// knows them whichever component answered.
var (
	// ErrUnknownProjection: no projection of that name runs here.
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrClosed: the component asked (time travel, rebuilds) was closed, as the process
	// stops; the same question asked again of a running process succeeds.
	ErrClosed = errors.New("closed")
)
