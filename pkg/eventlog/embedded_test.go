package eventlog_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog/logtest"
)

func embeddedConfig(dir string, segmentBytes int64) eventlog.Config {
	return eventlog.Config{
		Backend:  "embedded",
		Embedded: eventlog.EmbeddedConfig{Dir: dir, SegmentBytes: segmentBytes},
	}
}

func openEmbedded(t *testing.T, dir string, segmentBytes int64) (eventlog.Log, func() error) {
	t.Helper()
	l, closeLog, err := eventlog.Open(embeddedConfig(dir, segmentBytes), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			if err := closeLog(); err != nil {
				t.Error(err)
			}
		}
	})
	return l, func() error { closed = true; return closeLog() }
}

func TestEmbeddedContract(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		l, _ := openEmbedded(t, t.TempDir(), 64<<20)
		return l
	})
}

// Small segments: rotation happens all the time.
func TestEmbeddedContractSmallSegments(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		l, _ := openEmbedded(t, t.TempDir(), 4096)
		return l
	})
}

func entries(key string, from, n int) []eventlog.Entry {
	var es []eventlog.Entry
	for i := from; i < from+n; i++ {
		es = append(es, eventlog.Entry{Key: key, Value: []byte(key + ":" + strconv.Itoa(i))})
	}
	return es
}

func appendEach(t *testing.T, l eventlog.Log, topic string, es []eventlog.Entry) {
	t.Helper()
	for _, e := range es {
		if err := l.Append(context.Background(), topic, e); err != nil {
			t.Fatal(err)
		}
	}
}

func equal(t *testing.T, got, want []eventlog.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Key != want[i].Key || string(got[i].Value) != string(want[i].Value) {
			t.Fatalf("entry %d = %s %q, want %s %q", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
}

// consumeAll reads a group until it has n entries and a moment of quiet.
func consumeAll(t *testing.T, l eventlog.Log, topic, group string, n int) []eventlog.Entry {
	t.Helper()
	c := logtest.Start(t, l, topic, group, nil)
	if n > 0 {
		c.WaitFor(n, 10*time.Second)
	}
	time.Sleep(200 * time.Millisecond)
	c.Stop()
	return c.Entries()
}

func TestEmbeddedReopenKeepsEntriesAndPositions(t *testing.T) {
	dir := t.TempDir()
	l, closeLog := openEmbedded(t, dir, 64<<20)
	first := entries("k", 0, 10)
	appendEach(t, l, "served", first)
	equal(t, consumeAll(t, l, "served", "history", 10), first)
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), "served", first[0]); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Append after close = %v, want ErrClosed", err)
	}

	l, _ = openEmbedded(t, dir, 64<<20)
	second := entries("k", 10, 5)
	appendEach(t, l, "served", second)
	equal(t, consumeAll(t, l, "served", "history", 5), second)
	equal(t, consumeAll(t, l, "served", "other", 15), append(first, second...))
}

func segments(t *testing.T, dir, topic string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, topic, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func TestEmbeddedTornTail(t *testing.T) {
	for name, damage := range map[string]func(path string, size int64) error{
		// The last record cut short: a crash mid-write.
		"truncated": func(path string, size int64) error { return os.Truncate(path, size-3) },
		// The last record's bytes changed: its checksum fails.
		"corrupt": func(path string, size int64) error {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			_, err = f.WriteAt([]byte{'X'}, size-1)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		},
		// Half a header of garbage after the last record.
		"garbage": func(path string, size int64) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			_, err = f.Write([]byte{0, 0, 1})
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, closeLog := openEmbedded(t, dir, 64<<20)
			es := entries("k", 0, 10)
			appendEach(t, l, "served", es)
			if err := closeLog(); err != nil {
				t.Fatal(err)
			}
			segs := segments(t, dir, "served")
			if len(segs) != 1 {
				t.Fatalf("segments %v, want one", segs)
			}
			st, err := os.Stat(segs[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := damage(segs[0], st.Size()); err != nil {
				t.Fatal(err)
			}

			l, _ = openEmbedded(t, dir, 64<<20)
			kept := es
			if name != "garbage" {
				kept = es[:9] // the damaged record is dropped, never served
			}
			more := entries("k", 10, 3)
			appendEach(t, l, "served", more)
			equal(t, consumeAll(t, l, "served", "g", len(kept)+3), append(kept[:len(kept):len(kept)], more...))
		})
	}
}

func TestEmbeddedSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	openEmbedded(t, dir, 64<<20)
	_, _, err := eventlog.Open(embeddedConfig(dir, 64<<20), nil)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open of %s = %v, want an error naming the directory", dir, err)
	}
	t.Log(err)

	// And from another process.
	cmd := exec.Command(os.Args[0], "-test.run=^TestEmbeddedOpenHelper$")
	cmd.Env = append(os.Environ(), "EVENTLOG_HELPER_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another process") || !strings.Contains(string(out), dir) {
		t.Fatalf("Open in a second process: %v\n%s", err, out)
	}
}

// TestEmbeddedOpenHelper is the second process of TestEmbeddedSecondOpenFails.
func TestEmbeddedOpenHelper(t *testing.T) {
	dir := os.Getenv("EVENTLOG_HELPER_DIR")
	if dir == "" {
		return // not run as the helper
	}
	if _, _, err := eventlog.Open(embeddedConfig(dir, 64<<20), nil); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedOneConsumerPerGroup(t *testing.T) {
	l, _ := openEmbedded(t, t.TempDir(), 64<<20)
	c := logtest.Start(t, l, "served", "history", nil)
	time.Sleep(50 * time.Millisecond)
	err := l.Consume(context.Background(), "served", "history", func(context.Context, []eventlog.Entry) error { return nil })
	if !errors.Is(err, eventlog.ErrConsumerActive) {
		t.Errorf("second Consume of one group = %v, want ErrConsumerActive", err)
	}
	c.Stop()
	// Once the first has returned, the group can be consumed again.
	appendEach(t, l, "served", entries("k", 0, 1))
	equal(t, consumeAll(t, l, "served", "history", 1), entries("k", 0, 1))
}

func TestEmbeddedCloseStopsConsumers(t *testing.T) {
	l, closeLog := openEmbedded(t, t.TempDir(), 64<<20)
	c := logtest.Start(t, l, "served", "history", nil)
	time.Sleep(50 * time.Millisecond)
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.Done():
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("Consume on a closed log = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Consume did not return after the log was closed")
	}
}

func TestEmbeddedRetention(t *testing.T) {
	dir := t.TempDir()
	l, _ := openEmbedded(t, dir, 4096)
	// Group "slow" commits early, then stays behind.
	first := entries("k", 0, 10)
	appendEach(t, l, "served", first)
	equal(t, consumeAll(t, l, "served", "slow", 10), first)

	var batch []eventlog.Entry
	for i := 10; i < 1010; i++ {
		batch = append(batch, eventlog.Entry{Key: "k", Value: []byte(strings.Repeat("x", 90) + strconv.Itoa(i))})
		if len(batch) == 50 {
			if err := l.Append(context.Background(), "served", batch...); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	before := len(segments(t, dir, "served"))
	if before < 10 {
		t.Fatalf("%d segments of 4 KiB for ~100 KB, want rotation", before)
	}
	consumeAll(t, l, "served", "fast", 1010)
	if n := len(segments(t, dir, "served")); n != before {
		t.Errorf("segments went from %d to %d while group slow still needs them", before, n)
	}
	if got := consumeAll(t, l, "served", "slow", 1000); len(got) != 1000 || string(got[0].Value) != strings.Repeat("x", 90)+"10" {
		t.Fatalf("slow group got %d entries, want the 1000 after its position", len(got))
	}
	if n := len(segments(t, dir, "served")); n != 1 {
		t.Errorf("%d segments left after every group passed them, want 1 (the newest)", n)
	}
	// A new group starts at the oldest entry kept.
	if got := consumeAll(t, l, "served", "new", 0); len(got) >= 1010 {
		t.Errorf("a new group got %d entries: the deleted segments came back?", len(got))
	}
}

// A namespace names every topic and group the log uses: a log without it sees
// them under their full names, and its own "served" holds nothing of them.
func TestNamespace(t *testing.T) {
	dir := t.TempDir()
	cfg := embeddedConfig(dir, 64<<20)
	cfg.Namespace = "staging."
	l, closeLog, err := eventlog.Open(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	es := entries("k", 0, 3)
	appendEach(t, l, "served", es)
	got := consumeAll(t, l, "served", "history", 3)
	equal(t, got, es)
	if got[0].Topic != "staging.served" {
		t.Errorf("a consumed entry names topic %q, want the full name staging.served", got[0].Topic)
	}
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}

	plain, _ := openEmbedded(t, dir, 64<<20)
	equal(t, consumeAll(t, plain, "staging.served", "staging.history", 0), nil)
	equal(t, consumeAll(t, plain, "staging.served", "other", 3), es)
	if _, err := os.Stat(filepath.Join(dir, "served")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the namespaced log wrote topic served under its bare name: %v", err)
	}

	for _, bad := range []string{"a/b", "..", strings.Repeat("n", 101)} {
		cfg.Namespace = bad
		if _, _, err := eventlog.Open(cfg, nil); err == nil || !strings.Contains(err.Error(), "namespace") {
			t.Errorf("namespace %q: Open = %v, want an error naming the namespace", bad, err)
		}
	}
}
