package dataset

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error about the content of an input file.
var ErrMalformed = errors.New("malformed input")

// LineError says which line of which file was wrong, and how. Its message is
// `file:line: what was wrong`, the form editors and terminals link to.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *LineError) Unwrap() error { return ErrMalformed }

func lineErr(file string, line int, format string, args ...any) error {
	return &LineError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}
