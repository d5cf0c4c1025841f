package embedded

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// bbolt keeps a second process out of the database file with a flock, and
// after lockTimeout its Open says only "timeout". To say who holds the file,
// the process that opened it writes its pid next to it (HolderFile) and removes
// it on close; a process that finds the file held reads it, and the holder's
// command line from /proc where there is one. A crash leaves the pid file
// behind: the next holder overwrites it, and a reader that finds its process
// gone says so rather than blaming it.

// HolderFile is the file in which the process holding the database at path
// writes its pid.
func HolderFile(path string) string { return path + ".pid" }

// writeHolder records this process as the holder of path. It is best effort:
// the pid only improves an error message.
func writeHolder(path string) {
	_ = os.WriteFile(HolderFile(path), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// removeHolder removes the pid file if it still names this process.
func removeHolder(path string) {
	if pid, ok := readHolder(path); ok && pid == os.Getpid() {
		_ = os.Remove(HolderFile(path))
	}
}

func readHolder(path string) (int, bool) {
	b, err := os.ReadFile(HolderFile(path))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// maxCmdline bounds the holder's command line in a message.
const maxCmdline = 200

// cmdline is pid's command line, "" when it cannot be read (not running, or
// no /proc).
func cmdline(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	if len(s) > maxCmdline {
		s = s[:maxCmdline] + "…"
	}
	return s
}

// holder says who holds path, as well as its pid file and /proc tell.
func holder(path string) string {
	pid, ok := readHolder(path)
	switch {
	case !ok:
		return "another process"
	case pid == os.Getpid():
		return fmt.Sprintf("this process (pid %d), which opened it already", pid)
	}
	if cmd := cmdline(pid); cmd != "" {
		return fmt.Sprintf("pid %d (%s)", pid, cmd)
	}
	if _, err := os.Stat("/proc/self"); err == nil {
		return fmt.Sprintf("another process (%s names pid %d, which is no longer running)", HolderFile(path), pid)
	}
	return fmt.Sprintf("pid %d (from %s)", pid, HolderFile(path))
}

// heldError is Open's error when the file stays held past lockTimeout.
func heldError(path string) error {
	return fmt.Errorf("open embedded storage %s: %w: held by %s; `make run` or a `reco serve` may be using it: stop it, or point storage.embedded.path (RECO_STORAGE_EMBEDDED_PATH) at another file",
		path, ErrHeld, holder(path))
}
