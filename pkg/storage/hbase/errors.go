package hbase

import "errors"

var (
	// ErrUnknownFamily is returned for a table or column family that is not in
	// layout.Schema. It is checked before any call: HBase would refuse the write
	// too, but only after a round trip and with a less useful message.
	ErrUnknownFamily = errors.New("unknown table or column family")
	// ErrInvalidKey is returned for a row key HBase cannot store (empty, or longer
	// than 32767 bytes) or a column without a family.
	ErrInvalidKey = errors.New("invalid row key or column")
	// ErrContention is returned when a check-and-mutate loop (Append, Push, Take)
	// lost the race to other writers of the same cell too many times in a row.
	ErrContention = errors.New("too much contention on one cell")
	// ErrClosed is returned by calls made after the cleanup of Open ran.
	ErrClosed = errors.New("hbase client closed")
	// ErrTimeout is returned when a call ran past Config.Timeout while its
	// context had no earlier deadline.
	ErrTimeout = errors.New("hbase call timed out")
)
