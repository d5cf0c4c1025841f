package embedded

import "errors"

var (
	// ErrUnknownFamily is returned for a table or column family that is not in
	// layout.Schema: HBase refuses such a write too, and accepting it here would
	// hide a misspelt name until the first deployment against HBase.
	ErrUnknownFamily = errors.New("table or column family not in the schema")
	// ErrNotBootstrapped is returned when a table of the schema has not been
	// created yet: call Bootstrap, as the HBase backend requires.
	ErrNotBootstrapped = errors.New("table not created: run Bootstrap")
	// ErrInvalidKey is returned for an empty row or sorted-set key, or a row or
	// column holding a NUL byte, which the on-disk key layout uses as separator.
	ErrInvalidKey = errors.New("invalid key")
	// ErrHeld is returned by Open when another process (or another Open in
	// this one) holds the database file: bbolt lets one writer have it.
	ErrHeld = errors.New("database file in use")
)
