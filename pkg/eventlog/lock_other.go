//go:build !unix

package eventlog

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir without flock: the file only marks the directory; a second process
// is not kept out. The suite runs on Linux.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("eventlog: open %s: %w", path, err)
	}
	return f, nil
}

func unlockDir(f *os.File) error { return f.Close() }
