package breaker

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOpensAfterFailuresAndRecovers(t *testing.T) {
	var changes []bool
	b := New("hbase", func(_ string, open bool) { changes = append(changes, open) })
	ctx := context.Background()
	down := errors.New("connection refused")
	calls := 0
	call := func(err error) error {
		return b.Do(ctx, nil, func(context.Context) error { calls++; return err })
	}
	for range tripAfter {
		if err := call(down); !errors.Is(err, down) {
			t.Fatalf("call while closed = %v, want the dependency's error", err)
		}
	}
	before := calls
	start := time.Now()
	if err := call(nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("call after %d failures = %v, want ErrOpen", tripAfter, err)
	}
	if calls != before || time.Since(start) > 10*time.Millisecond {
		t.Errorf("an open breaker ran the call (%d calls) or took %v: it must refuse at once", calls-before, time.Since(start))
	}
	time.Sleep(openFor + 50*time.Millisecond)
	if err := call(nil); err != nil {
		t.Fatalf("probe after %v = %v, want it to run and succeed", openFor, err)
	}
	if err := call(nil); err != nil {
		t.Errorf("call after a good probe = %v, want closed", err)
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Errorf("state changes = %v, want open then closed", changes)
	}
}

func TestIgnoredErrorsAndCancellationDoNotTrip(t *testing.T) {
	b := New("redis", nil)
	bad := errors.New("bad argument")
	for range 3 * tripAfter {
		_ = b.Do(context.Background(), func(err error) bool { return !errors.Is(err, bad) }, func(context.Context) error { return bad })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = b.Do(ctx, nil, func(ctx context.Context) error { return ctx.Err() })
	}
	if err := b.Do(context.Background(), nil, func(context.Context) error { return nil }); err != nil {
		t.Errorf("after only ignored errors and cancellations: %v, want the call to run", err)
	}
}

func TestAnOverloadedDependencyIsNotCutOff(t *testing.T) {
	b := New("peer", nil)
	slow := context.DeadlineExceeded
	for i := range 200 {
		err := b.Do(context.Background(), func(error) bool { return true }, func(context.Context) error {
			if i >= 30 && (i/6)%2 == 1 {
				return slow // runs of calls miss their deadline under load
			}
			return nil
		})
		if errors.Is(err, ErrOpen) {
			t.Fatalf("call %d refused: a busy dependency answering half its calls must not be cut off", i)
		}
	}
}

// A call that starts with its caller's deadline about to pass fails on that
// deadline, not on the dependency: such calls must not trip the breaker, while
// calls that had their time and got no answer must.
func TestACallerOutOfTimeDoesNotBlameTheDependency(t *testing.T) {
	b := New("redis", nil)
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for range 2 * tripAfter {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if err := b.Do(ctx, nil, hang); errors.Is(err, ErrOpen) {
			t.Fatal("the breaker opened on calls whose caller had 1ms left")
		}
		cancel()
	}
	for range tripAfter {
		ctx, cancel := context.WithTimeout(context.Background(), 2*minBlame)
		_ = b.Do(ctx, nil, hang)
		cancel()
	}
	if err := b.Do(context.Background(), nil, func(context.Context) error { return nil }); !errors.Is(err, ErrOpen) {
		t.Errorf("after %d calls that got %v and no answer: %v, want the breaker open", tripAfter, 2*minBlame, err)
	}
}
