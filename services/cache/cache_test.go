package cache

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
)

func newCache(t *testing.T) *Cache {
	t.Helper()
	db, cleanup, err := embedded.Open(embedded.Config{Path: filepath.Join(t.TempDir(), "c.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	if err := db.Tables().Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Tier1Size: 100, RefillSize: 40, TTL: time.Minute, TTLJitter: 10 * time.Second}
	c, err := New(cfg, time.Minute, Stores{Tier1: db.Sets(), Tier2: db.Tables()}, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	// Reader u's seen sets, seeded from an empty history.
	for _, ch := range []int32{0, 1, 2} {
		if err := db.Sets().Seed(context.Background(), "u", ch, nil, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// pop takes n ids for a refresh under way.
func pop(c *Cache, user string, channel int32, n int) ([]int64, error) {
	t, err := c.Take(context.Background(), user, channel, 0, n)
	return t.IDs, err
}

func span(from, to int64) []int64 {
	var ids []int64
	for id := from; id < to; id++ {
		ids = append(ids, id)
	}
	return ids
}

func TestTakeServesRankedOrderAcrossTiers(t *testing.T) {
	c := newCache(t)
	ctx := context.Background()
	ranked := span(1, 151) // best first
	if err := c.Store(ctx, "u", 2, ranked); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		n    int
		want []int64
	}{
		{30, span(1, 31)},
		{80, span(31, 111)}, // tier 1's last 70, then the head of tier 2 moves up
		{100, span(111, 151)},
		{5, nil},
	} {
		got, err := pop(c, "u", 2, tt.n)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Take(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
		}
	}
}

func TestRefillMovesOnlyTheHead(t *testing.T) {
	c := newCache(t)
	ctx := context.Background()
	if err := c.stores.Tier2.Push(ctx, "u", 1, span(1, 101)); err != nil {
		t.Fatal(err)
	}
	if got, err := pop(c, "u", 1, 10); err != nil || !slices.Equal(got, span(1, 11)) {
		t.Fatalf("Take = %v, %v; want 1..10", got, err)
	}
	// RefillSize is 40: 30 wait in tier 1, 60 stay in tier 2.
	if tier1, _ := c.stores.Tier1.Pop(ctx, "u", 1, 100); !slices.Equal(tier1, span(11, 41)) {
		t.Errorf("tier 1 holds %v, want 11..40", tier1)
	}
	if rest, _ := c.stores.Tier2.Take(ctx, "u", 1, 100); !slices.Equal(rest, span(41, 101)) {
		t.Errorf("tier 2 holds %v, want 41..100", rest)
	}
}

func TestTTLJitter(t *testing.T) {
	c := newCache(t)
	seen := map[time.Duration]bool{}
	for range 100 {
		d := c.ttl()
		if d < time.Minute || d >= time.Minute+10*time.Second {
			t.Fatalf("ttl %v outside [1m, 1m10s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("only %d distinct ttls in 100: not jittered", len(seen))
	}
}

// downQueue is a wait queue that cannot be reached.
type downQueue struct{ storage.WaitQueue }

func (downQueue) Take(context.Context, string, int32, int) ([]int64, error) {
	return nil, errors.New("hbase: connection refused")
}

// Tier 2 down: what tier 1 held is served, and a tier 1 that ran dry answers
// empty rather than failing (an error would lose the ids already popped).
func TestTakeWithTier2DownAnswersFromTier1(t *testing.T) {
	c := newCache(t)
	ctx := context.Background()
	if err := c.Store(ctx, "u", 2, span(1, 4)); err != nil {
		t.Fatal(err)
	}
	c.stores.Tier2 = downQueue{c.stores.Tier2}
	got, err := pop(c, "u", 2, 10)
	if err != nil || !slices.Equal(got, span(1, 4)) {
		t.Errorf("Take with tier 2 down = %v, %v; want [1 2 3], no error", got, err)
	}
	got, err = pop(c, "u", 2, 10)
	if err != nil || len(got) != 0 {
		t.Errorf("Take of an empty tier 1 with tier 2 down = %v, %v; want nothing, no error", got, err)
	}
}

// A refresh starts once per stamp: the first take at a stamp after the
// newest refresh takes, a second at it or before is a history page; and an
// id served elsewhere (claimed in channel 0) never comes out of the queue.
func TestTakeStartsARefreshOnce(t *testing.T) {
	c := newCache(t)
	ctx := context.Background()
	if err := c.Store(ctx, "u", 2, span(1, 6)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.stores.Tier1.(storage.ServedClaims).Claim(ctx, "u", 0, []int64{1}, time.Minute); err != nil || !slices.Equal(got, []int64{1}) {
		t.Fatalf("Claim(0, [1]) = %v, %v", got, err)
	}
	got, err := c.Take(ctx, "u", 2, 100, 2)
	if err != nil || got.Older || got.Last != 0 || !slices.Equal(got.IDs, []int64{2, 3}) {
		t.Errorf("Take(at 100) = %+v, %v; want [2 3] after no refresh", got, err)
	}
	got, err = c.Take(ctx, "u", 2, 100, 2)
	if err != nil || !got.Older || got.Last != 100 || len(got.IDs) != 0 {
		t.Errorf("Take(at 100) again = %+v, %v; want a history page of 100", got, err)
	}
	if _, err := c.Take(ctx, "nobody", 2, 100, 2); !errors.Is(err, storage.ErrUnseeded) {
		t.Errorf("Take for a reader never seeded: err = %v, want ErrUnseeded", err)
	}
}

// slowTier2 takes from tier 2 at once and answers only after the caller's
// context ended, as an HBase that committed the take and answers late does.
type slowTier2 struct {
	storage.WaitQueue
	late chan struct{}
}

func (s slowTier2) Take(ctx context.Context, user string, channel int32, n int) ([]int64, error) {
	ids, err := s.WaitQueue.Take(context.WithoutCancel(ctx), user, channel, n)
	<-s.late
	return ids, err
}

// A refill whose caller left while tier 2 was answering still moves what it
// took into tier 1: the next refresh gets those ids, none is lost.
func TestARefillOutlivesItsCaller(t *testing.T) {
	c := newCache(t)
	ctx := context.Background()
	if err := c.Store(ctx, "u", 1, span(1, 151)); err != nil { // 100 in tier 1, 50 in tier 2
		t.Fatal(err)
	}
	if got, err := pop(c, "u", 1, 100); err != nil || len(got) != 100 {
		t.Fatalf("draining tier 1: %d ids, %v", len(got), err)
	}
	late := make(chan struct{})
	c.stores.Tier2 = slowTier2{WaitQueue: c.stores.Tier2, late: late}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel(); time.Sleep(20 * time.Millisecond); close(late) }()
	if _, err := c.Take(cctx, "u", 1, 0, 10); err != nil {
		t.Fatalf("Take whose caller left during the refill = %v; want the (empty) answer, not an error", err)
	}
	// Every id tier 2 held comes out, the 40 the abandoned refill moved
	// included (a refill of the pops below may overtake it: order aside).
	var got []int64
	for deadline := time.Now().Add(5 * time.Second); len(got) < 50 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ids, err := pop(c, "u", 1, 50-len(got))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids...)
	}
	slices.Sort(got)
	if !slices.Equal(got, span(101, 151)) {
		t.Errorf("after the abandoned refill the cache gave %v; want all 50 ids of tier 2, 101..150", got)
	}
}
