package recocenter

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
)

// TestServedLogBecomesHistory: what a refresh appended is applied to history
// by the background applier, once however often it is delivered; a malformed
// entry is skipped, not retried forever.
func TestServedLogBecomesHistory(t *testing.T) {
	t.Parallel()
	log := servedLog(t)
	history := newFakeHistory()
	served := NewServed(log, history, newFakeClaims(history), time.Hour, zap.NewNop())
	ctx := testCtx(t)
	if err := log.Append(ctx, ServedTopic, eventlog.Entry{Key: "u1", Value: []byte(`{"user": "u1", "channel": 99}`)}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // delivered twice: merged, not doubled
		if err := served.Append(ctx, "u1", 3, 200, []int64{4, 3}, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := served.Append(ctx, "u1", 3, 300, []int64{5}, false); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- served.Apply(actx) }()
	deadline := time.Now().Add(5 * time.Second)
	for history.at("u1", 3, 300) == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := history.at("u1", 3, 200); !slices.Equal(got, []int64{4, 3}) {
		t.Errorf("history at 200 = %v, want [4 3]", got)
	}
	if got := history.at("u1", 3, 300); !slices.Equal(got, []int64{5}) {
		t.Errorf("history at 300 = %v, want [5]", got)
	}
}

// TestServedLogAppliesReadersSideBySide: the applier writes different
// readers' refreshes to history concurrently (one store round trip at a time
// bounded it at about a thousand refreshes a second), and one reader's in log
// order: their second refresh waits for their first.
func TestServedLogAppliesReadersSideBySide(t *testing.T) {
	t.Parallel()
	log := servedLog(t)
	history := newFakeHistory()
	served := NewServed(log, history, newFakeClaims(history), time.Hour, zap.NewNop())
	ctx := testCtx(t)
	for i, u := range []string{"u1", "u2", "u3", "u4", "u1"} {
		if err := served.Append(ctx, u, 3, int64(100+i), []int64{int64(i + 1)}, true); err != nil {
			t.Fatal(err)
		}
	}
	release := history.gate("Record")
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- served.Apply(actx) }()
	history.waitCalls(t, "Record", 4) // all four readers at once
	time.Sleep(50 * time.Millisecond)
	if n := history.count("Record"); n != 4 {
		t.Errorf("%d Record calls in flight, want 4: u1's second refresh must wait for its first", n)
	}
	release()
	users := []string{"u1", "u2", "u3", "u4", "u1"}
	applied := func() bool {
		for i, u := range users {
			if !slices.Equal(history.at(u, 3, int64(100+i)), []int64{int64(i + 1)}) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(5 * time.Second)
	for !applied() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, u := range users {
		if got := history.at(u, 3, int64(100+i)); !slices.Equal(got, []int64{int64(i + 1)}) {
			t.Errorf("history of %s at %d = %v, want [%d]", u, 100+i, got, i+1)
		}
	}
}

// TestServedLogReachesTheSeenSets: ids a refresh served while its claim fell
// back (the seen set did not get them) are added to the reader's seen set
// from the log, so a later claim refuses them even if the process that
// served them is gone; a lost set is left to be seeded from history.
func TestServedLogReachesTheSeenSets(t *testing.T) {
	t.Parallel()
	log := servedLog(t)
	history := newFakeHistory()
	claims := newFakeClaims(history)
	ctx := testCtx(t)
	if _, err := claims.Claim(ctx, "u1", 0, []int64{1}, time.Hour); err != nil { // seeds channel 0
		t.Fatal(err)
	}
	served := NewServed(log, history, claims, time.Hour, zap.NewNop())
	// 6 was claimed as it was served: the entry says so, and is not claimed
	// again (here, where the claim never ran, it stays out of the set).
	if err := served.Append(ctx, "u1", 0, 100, []int64{6}, true); err != nil {
		t.Fatal(err)
	}
	if err := served.Append(ctx, "u1", 0, 200, []int64{7, 8}, false); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- served.ApplySeen(actx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(claims.served("u1", 0), 8) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("ApplySeen: %v", err)
	}
	if got := claims.served("u1", 0); !slices.Equal(got, []int64{1, 7, 8}) {
		t.Errorf("channel 0 seen set = %v, want [1 7 8]", got)
	}
	if got, err := claims.Claim(ctx, "u1", 3, []int64{7, 9}, time.Hour); err != nil || !slices.Equal(got, []int64{9}) {
		t.Errorf("claim of 7, 9 in channel 3 = %v, %v; want [9]: 7 was served in channel 0", got, err)
	}
}

// servedLog is an embedded event log of the test's own, closed at its end.
func servedLog(t *testing.T) eventlog.Log {
	t.Helper()
	log, closeLog, err := eventlog.Open(eventlog.Config{Backend: "embedded", Embedded: eventlog.EmbeddedConfig{Dir: filepath.Join(t.TempDir(), "log"), SegmentBytes: 1 << 20}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := closeLog(); err != nil {
			t.Error(err)
		}
	})
	return log
}
