package recocenter

import "errors"

// ErrInvalidRequest is wrapped by the errors of a request that is out of range:
// the caller's mistake, not a failing dependency.
var ErrInvalidRequest = errors.New("invalid feed request")
