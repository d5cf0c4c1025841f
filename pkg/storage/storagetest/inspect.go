package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// inspectWait runs the contract of storage.WaitInspector, which every
// backend's tables offer: a peek shows the queue as Take would find it and
// takes nothing.
func inspectWait(t *testing.T, tables storage.Tables) {
	w, ok := tables.(storage.WaitInspector)
	if !ok {
		t.Fatalf("tables %T do not implement storage.WaitInspector", tables)
	}
	user := unique(t)
	if got, err := w.PeekWait(ctx(t), user, 1); err != nil || len(got) != 0 {
		t.Fatalf("PeekWait of an empty queue = %v, %v; want nothing", got, err)
	}
	if err := tables.Push(ctx(t), user, 1, []int64{3, 1, 2}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := w.PeekWait(ctx(t), user, 1); err != nil || !slices.Equal(got, []int64{3, 1, 2}) {
			t.Errorf("PeekWait = %v, %v; want [3 1 2], head first", got, err)
		}
	}
	if got, err := w.PeekWait(ctx(t), user, 2); err != nil || len(got) != 0 {
		t.Errorf("PeekWait of another channel = %v, %v; want nothing", got, err)
	}
	if got, err := tables.Take(ctx(t), user, 1, 2); err != nil || !slices.Equal(got, []int64{3, 1}) {
		t.Errorf("Take(2) after peeks = %v, %v; want [3 1]: a peek takes nothing", got, err)
	}
	if got, err := w.PeekWait(ctx(t), user, 1); err != nil || !slices.Equal(got, []int64{2}) {
		t.Errorf("PeekWait after Take = %v, %v; want [2]", got, err)
	}
	if _, err := tables.Take(ctx(t), user, 1, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := w.PeekWait(ctx(t), user, 1); err != nil || len(got) != 0 {
		t.Errorf("PeekWait of an emptied queue = %v, %v; want nothing", got, err)
	}
}

// inspectCache runs the contract of storage.CacheInspector, which every
// backend's sets offer: peeks show tier 1 in pop order and the seen sets as
// claims check them, and pop, claim, seed and re-expire nothing.
func inspectCache(t *testing.T, sets storage.Sets) {
	c, ok := sets.(storage.CacheInspector)
	if !ok {
		t.Fatalf("sets %T do not implement storage.CacheInspector", sets)
	}

	t.Run("tier 1 in pop order, without popping", func(t *testing.T) {
		user := unique(t)
		if got, err := c.PeekTier1(ctx(t), user, 1, 10); err != nil || len(got.IDs) != 0 || got.Count != 0 || got.TTL != 0 {
			t.Fatalf("PeekTier1 of an empty tier = %+v, %v; want nothing", got, err)
		}
		if err := sets.Store(ctx(t), user, 1, []int64{2, 3, 1, 4}, time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			n    int
			want []int64
		}{{10, []int64{2, 3, 1, 4}}, {2, []int64{2, 3}}, {0, nil}, {-1, nil}} {
			got, err := c.PeekTier1(ctx(t), user, 1, tt.n)
			if err != nil || !slices.Equal(got.IDs, tt.want) || got.Count != 4 || got.TTL <= 0 || got.TTL > time.Minute {
				t.Errorf("PeekTier1(%d) = %+v, %v; want %v, count 4, a ttl within a minute", tt.n, got, err, tt.want)
			}
		}
		if got, err := c.PeekTier1(ctx(t), user, 2, 10); err != nil || got.Count != 0 {
			t.Errorf("PeekTier1 of another channel = %+v, %v; want nothing", got, err)
		}
		if got, err := sets.Pop(ctx(t), user, 1, 10); err != nil || !slices.Equal(got, []int64{2, 3, 1, 4}) {
			t.Errorf("Pop after peeks = %v, %v; want [2 3 1 4]: a peek pops nothing", got, err)
		}
	})

	t.Run("a peek leaves the expiry as it was", func(t *testing.T) {
		user := unique(t)
		if err := sets.Store(ctx(t), user, 1, []int64{1}, 400*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		first, err := c.PeekTier1(ctx(t), user, 1, 1)
		if err != nil || first.TTL <= 0 || first.TTL > 400*time.Millisecond {
			t.Fatalf("PeekTier1 = %+v, %v; want a ttl within 400ms", first, err)
		}
		time.Sleep(150 * time.Millisecond)
		if again, err := c.PeekTier1(ctx(t), user, 1, 1); err != nil || again.TTL >= first.TTL {
			t.Errorf("PeekTier1 150ms later: ttl %v, %v; want less than %v", again.TTL, err, first.TTL)
		}
		time.Sleep(500 * time.Millisecond)
		if got, err := c.PeekTier1(ctx(t), user, 1, 1); err != nil || got.Count != 0 || len(got.IDs) != 0 {
			t.Errorf("PeekTier1 after the ttl = %+v, %v; want nothing: the tier expired", got, err)
		}
	})

	t.Run("seen sets as claims check them, without claiming or seeding", func(t *testing.T) {
		user := unique(t)
		if got, err := c.PeekSeen(ctx(t), user, 1, 10); err != nil || got.Seeded || got.Count != 0 || len(got.IDs) != 0 || got.TTL != 0 {
			t.Fatalf("PeekSeen of an absent set = %+v, %v; want empty and not seeded", got, err)
		}
		if _, err := sets.Claim(ctx(t), user, 1, []int64{1}, time.Minute); !errors.Is(err, storage.ErrUnseeded) {
			t.Fatalf("Claim after a peek: err = %v, want ErrUnseeded: a peek seeds nothing", err)
		}
		if err := sets.Seed(ctx(t), user, 0, []int64{9}, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := sets.Seed(ctx(t), user, 1, []int64{15, 3}, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Claim(ctx(t), user, 1, []int64{2, 9, 1}, time.Minute); err != nil || !slices.Equal(got, []int64{2, 1}) {
			t.Fatalf("Claim = %v, %v; want [2 1]", got, err)
		}
		for _, tt := range []struct {
			channel int32
			n       int
			count   int
			want    []int64
		}{
			{1, 10, 4, []int64{1, 2, 3, 15}},
			{1, 2, 4, []int64{1, 2}},
			{1, 0, 4, nil},
			{0, 10, 1, []int64{9}},
		} {
			got, err := c.PeekSeen(ctx(t), user, tt.channel, tt.n)
			if err != nil || !got.Seeded || got.Count != tt.count || !slices.Equal(got.IDs, tt.want) || got.TTL <= 0 || got.TTL > time.Minute {
				t.Errorf("PeekSeen(channel %d, %d) = %+v, %v; want seeded, count %d, ids %v, a ttl within a minute", tt.channel, tt.n, got, err, tt.count, tt.want)
			}
		}
		if got, err := sets.Claim(ctx(t), user, 1, []int64{1, 4}, time.Minute); err != nil || !slices.Equal(got, []int64{4}) {
			t.Errorf("Claim after peeks = %v, %v; want [4]: a peek claims nothing", got, err)
		}
	})
}
