package dataset

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error about the content of an input file.
var ErrMalformed = errors.New("malformed input")

// ErrUnknownArticle is wrapped, besides ErrMalformed, by the error of a
// behaviour line that names an article news.tsv lacks: real MIND files are not
// perfectly consistent, and ReadOptions.SkipUnknown drops such references
// instead of failing.
var ErrUnknownArticle = errors.New("article not in news.tsv")

// LineError says which line of which file was wrong, and how. Its message is
// `file:line: what was wrong`, the form editors and terminals link to.
type LineError struct {
	File string
	Line int
	Msg  string
	// Err is what kind of malformed it is, when callers may handle that kind
	// (ErrUnknownArticle); nil otherwise.
	Err error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Unwrap makes errors.Is(err, ErrMalformed) hold, and errors.Is(err, e.Err).
func (e *LineError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrMalformed}
	}
	return []error{ErrMalformed, e.Err}
}

func lineErr(file string, line int, format string, args ...any) error {
	return &LineError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func unknownErr(file string, line int, format string, args ...any) error {
	return &LineError{File: file, Line: line, Msg: fmt.Sprintf(format, args...), Err: ErrUnknownArticle}
}
