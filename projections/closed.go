package projections

import "errors"

// ErrClosed: the component asked (time travel, rebuilds) was closed, as the process stops;
// the same question asked again of a running process succeeds.
var ErrClosed = errors.New("closed")
