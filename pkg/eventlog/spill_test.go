package eventlog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// flaky is a primary that can be down (failing at once) or hung (answering
// nothing until the caller gives up), over an embedded log that holds what it
// acknowledged.
type flaky struct {
	Log
	down, hung atomic.Bool
	appends    atomic.Int64
}

var errDown = errors.New("primary down")

func (f *flaky) Append(ctx context.Context, topic string, entries ...Entry) error {
	f.appends.Add(1)
	switch {
	case f.hung.Load():
		<-ctx.Done()
		return ctx.Err()
	case f.down.Load():
		return errDown
	}
	return f.Log.Append(ctx, topic, entries...)
}

func newFlaky(t *testing.T) *flaky {
	t.Helper()
	l, err := openEmbedded(EmbeddedConfig{Dir: t.TempDir(), SegmentBytes: 1 << 20}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.close() })
	return &flaky{Log: l}
}

func openTestSpill(t *testing.T, primary Log, dir string) *spillLog {
	t.Helper()
	s, err := openSpill(primary, EmbeddedConfig{Dir: dir, SegmentBytes: 4096}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// received reads what the primary holds of topic until it has n entries or a
// few seconds passed.
func received(t *testing.T, l Log, topic string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []string
	_ = l.Consume(ctx, topic, "check", func(_ context.Context, batch []Entry) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range batch {
			got = append(got, string(e.Value))
		}
		if len(got) >= n {
			cancel()
		}
		return nil
	})
	return got
}

func values(from, n int) []Entry {
	var es []Entry
	for i := from; i < from+n; i++ {
		es = append(es, Entry{Key: "u", Value: fmt.Appendf(nil, "v%d", i)})
	}
	return es
}

func want(from, n int) []string {
	var out []string
	for _, e := range values(from, n) {
		out = append(out, string(e.Value))
	}
	return out
}

// An append the primary refuses is answered from the spill and reaches the
// primary once it is back, in order.
func TestSpillKeepsAppendsWhilePrimaryIsDown(t *testing.T) {
	t.Parallel()
	p := newFlaky(t)
	s := openTestSpill(t, p, t.TempDir())
	defer func() {
		if err := s.close(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	if err := s.Append(ctx, "served", values(0, 2)...); err != nil {
		t.Fatal(err)
	}
	p.down.Store(true)
	for i := 2; i < 12; i++ {
		if err := s.Append(ctx, "served", values(i, 1)...); err != nil {
			t.Fatalf("append %d with the primary down: %v, want it spilled", i, err)
		}
	}
	p.down.Store(false)
	if got := received(t, p, "served", 12); !slices.Equal(got, want(0, 12)) {
		t.Errorf("primary holds %v, want %v", got, want(0, 12))
	}
}

// A hung primary costs an append its share of the deadline, and the breaker
// then skips it: appends go to the spill at once.
func TestSpillBoundsAHungPrimary(t *testing.T) {
	t.Parallel()
	p := newFlaky(t)
	p.hung.Store(true)
	s := openTestSpill(t, p, t.TempDir())
	defer func() {
		if err := s.close(); err != nil {
			t.Error(err)
		}
	}()
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := s.Append(ctx, "served", values(i, 1)...)
		cancel()
		if err != nil {
			t.Fatalf("append %d with the primary hung: %v, want it spilled within its deadline", i, err)
		}
	}
	// 10 appends, and the drain's attempts: once the breaker opened, the
	// primary is not called for every append.
	if n := p.appends.Load(); n >= 10 {
		t.Errorf("the hung primary got %d calls for 10 appends: the breaker did not skip it", n)
	}
	p.hung.Store(false)
	if got := received(t, p, "served", 10); !slices.Equal(got, want(0, 10)) {
		t.Errorf("primary holds %v, want %v", got, want(0, 10))
	}
}

// Entries spilled before the process stopped are drained after it restarts.
func TestSpillDrainsAfterARestart(t *testing.T) {
	t.Parallel()
	p := newFlaky(t)
	p.down.Store(true)
	dir := filepath.Join(t.TempDir(), "spill")
	s := openTestSpill(t, p, dir)
	if err := s.Append(context.Background(), "served", values(0, 3)...); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	p.down.Store(false)
	s = openTestSpill(t, p, dir)
	defer func() {
		if err := s.close(); err != nil {
			t.Error(err)
		}
	}()
	if got := received(t, p, "served", 3); !slices.Equal(got, want(0, 3)) {
		t.Errorf("primary holds %v after the restart, want %v", got, want(0, 3))
	}
}
