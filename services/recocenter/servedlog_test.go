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
	log, closeLog, err := eventlog.Open(eventlog.Config{Backend: "embedded", Embedded: eventlog.EmbeddedConfig{Dir: filepath.Join(t.TempDir(), "log"), SegmentBytes: 1 << 20}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	history := newFakeHistory()
	served := NewServed(log, history, zap.NewNop())
	ctx := testCtx(t)
	if err := log.Append(ctx, ServedTopic, eventlog.Entry{Key: "u1", Value: []byte(`{"user": "u1", "channel": 99}`)}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // delivered twice: merged, not doubled
		if err := served.Append(ctx, "u1", 3, 200, []int64{4, 3}); err != nil {
			t.Fatal(err)
		}
	}
	if err := served.Append(ctx, "u1", 3, 300, []int64{5}); err != nil {
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
