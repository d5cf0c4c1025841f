package embedded

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// holdEnv makes the test binary a process that opens the database at its
// value, says "held", and keeps it until its stdin closes.
const holdEnv = "RECOTEST_EMBEDDED_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		_, cleanup, err := Open(Config{Path: path, NoSync: true})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("held")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		_ = cleanup()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdInChild opens path in another process, until release is called or the
// test ends.
func holdInChild(t *testing.T, path string) (child *exec.Cmd, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if !released {
			released = true
			_ = stdin.Close() // the EOF tells the holder to exit; Wait says how it did
			if err := cmd.Wait(); err != nil {
				t.Errorf("the holding process: %v", err)
			}
		}
	}
	t.Cleanup(release)
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("the holding process said %q, %v", line, err)
	}
	return cmd, release
}

// TestOpenNamesTheHolder: a second process opening a held file is told which
// process holds it and what to do, instead of bbolt's bare "timeout"; once the
// holder is gone the file opens and the pid file names the new holder.
func TestOpenNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reco.db")
	child, release := holdInChild(t, path)

	_, _, err := Open(Config{Path: path})
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("Open of a held file: %v, want ErrHeld", err)
	}
	for _, want := range []string{
		path,
		fmt.Sprintf("held by pid %d (%s ", child.Process.Pid, os.Args[0]),
		"`make run` or a `reco serve` may be using it",
		"RECO_STORAGE_EMBEDDED_PATH",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open of a held file: %q does not say %q", err, want)
		}
	}

	// The holder exits: its pid file goes with it, and the next Open holds.
	release()
	if _, err := os.Stat(HolderFile(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the holder closed, %s: %v; want it removed", HolderFile(path), err)
	}
	_, cleanup, err := Open(Config{Path: path})
	if err != nil {
		t.Fatalf("Open after the holder exited: %v", err)
	}
	if pid, ok := readHolder(path); !ok || pid != os.Getpid() {
		t.Errorf("pid file names %d, %v; want this process, %d", pid, ok, os.Getpid())
	}
	// A second Open in the same process is told it holds the file itself.
	if _, _, err := Open(Config{Path: path}); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), fmt.Sprintf("this process (pid %d)", os.Getpid())) {
		t.Errorf("a second Open in the holding process: %v, want it to say this process holds the file", err)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWithAStalePidFile: a pid file left by a crash names a process that
// is gone; the message does not blame it.
func TestOpenWithAStalePidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reco.db")
	// A holder that wrote no pid file (an older reco, bbolt's own tools): a
	// flock of the file from another open file of this process.
	if _, cleanup, err := Open(Config{Path: path}); err != nil {
		t.Fatal(err)
	} else if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // releases the flock; nothing was written
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(HolderFile(path), []byte(strconv.Itoa(gone.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = Open(Config{Path: path})
	want := fmt.Sprintf("held by another process (%s names pid %d, which is no longer running)", HolderFile(path), gone.Process.Pid)
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), want) {
		t.Errorf("Open with a stale pid file: %v, want it to say %q", err, want)
	}
}
