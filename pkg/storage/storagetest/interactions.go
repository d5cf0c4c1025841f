package storagetest

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

func boost(t *testing.T, sets storage.Sets) {
	t.Run("boost puts ids ahead in order, moving those the tier holds", func(t *testing.T) {
		user := unique(t)
		if err := sets.Store(ctx(t), user, 1, []int64{1, 2, 3, 4}, time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, ids := range [][]int64{{9, 3, 8}, {7, 7, 4}, nil} {
			if err := sets.Boost(ctx(t), user, 1, ids, time.Minute); err != nil {
				t.Fatalf("Boost(%v): %v", ids, err)
			}
		}
		if err := sets.Boost(ctx(t), user, 1, []int64{5, 0}, time.Minute); err == nil {
			t.Error("Boost of id 0 succeeded")
		}
		got, err := sets.Pop(ctx(t), user, 1, 10)
		if want := []int64{7, 4, 9, 3, 8, 1, 2}; err != nil || !slices.Equal(got, want) {
			t.Errorf("Pop after Store(1 2 3 4), Boost(9 3 8), Boost(7 7 4) = %v, %v; want %v", got, err, want)
		}
		if err := sets.Boost(ctx(t), user, 2, []int64{6, 5}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Pop(ctx(t), user, 2, 10); err != nil || !slices.Equal(got, []int64{6, 5}) {
			t.Errorf("Pop after Boost(6 5) of an empty tier = %v, %v; want [6 5]", got, err)
		}
	})

	t.Run("boost resets the tier's expiry", func(t *testing.T) {
		shortened, lengthened := unique(t), unique(t)+"l"
		if err := sets.Store(ctx(t), shortened, 1, []int64{1}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := sets.Store(ctx(t), lengthened, 1, []int64{1}, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := sets.Boost(ctx(t), shortened, 1, []int64{2}, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := sets.Boost(ctx(t), lengthened, 1, []int64{2}, time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond)
		if got, err := sets.Pop(ctx(t), shortened, 1, 5); err != nil || len(got) != 0 {
			t.Errorf("Pop after a Boost with a shorter ttl ran out = %v, %v; want nothing", got, err)
		}
		if got, err := sets.Pop(ctx(t), lengthened, 1, 5); err != nil || !slices.Equal(got, []int64{2, 1}) {
			t.Errorf("Pop after a Boost with a longer ttl = %v, %v; want [2 1]", got, err)
		}
	})
}

func interactions(t *testing.T, sets storage.Sets) {
	t.Run("AddHeat", func(t *testing.T) { addHeat(t, sets) })
	t.Run("Cool", func(t *testing.T) { cool(t, sets) })
	t.Run("AddExposures", func(t *testing.T) { addExposures(t, sets) })
}

func heat(p int32, offset int64, ch int32, article int64, weight float64) storage.Heat {
	return storage.Heat{Mark: storage.Mark{Partition: p, Offset: offset}, Channel: ch, Article: article, Weight: weight}
}

// hotIs checks channel's whole hot list.
func hotIs(t *testing.T, sets storage.Sets, ch int32, want []storage.Scored, when string) {
	t.Helper()
	got, err := sets.Top(ctx(t), storage.HotList, ch, 100)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("hot list %s = %v, %v; want %v", when, got, err, want)
	}
}

func addHeat(t *testing.T, sets storage.Sets) {
	t.Run("a redelivered action counts once, per partition and channel", func(t *testing.T) {
		ch := uniqueChannel()
		// Equal scores list the greater member first, as Redis does.
		steps := []struct {
			name    string
			heats   []storage.Heat
			applied int
			want    []storage.Scored
		}{
			{"first delivery", []storage.Heat{heat(0, 10, ch, 1, 1), heat(0, 10, ch, 2, 2), heat(0, 11, ch, 1, 1), heat(1, 5, ch, 2, 1)},
				4, []storage.Scored{{ID: 2, Score: 3}, {ID: 1, Score: 2}}},
			{"the batch again", []storage.Heat{heat(0, 10, ch, 1, 1), heat(0, 10, ch, 2, 2), heat(0, 11, ch, 1, 1), heat(1, 5, ch, 2, 1)},
				0, []storage.Scored{{ID: 2, Score: 3}, {ID: 1, Score: 2}}},
			{"a later offset after a redelivered one", []storage.Heat{heat(0, 11, ch, 1, 1), heat(0, 12, ch, 1, 1)},
				1, []storage.Scored{{ID: 2, Score: 3}, {ID: 1, Score: 3}}},
			{"partitions apart: older on 1, new partition 2 from offset 0", []storage.Heat{heat(1, 3, ch, 3, 1), heat(2, 0, ch, 3, 0.5), heat(1, 6, ch, 3, 1)},
				2, []storage.Scored{{ID: 2, Score: 3}, {ID: 1, Score: 3}, {ID: 3, Score: 1.5}}},
			{"offsets compared as integers: 10 after 9, 2^53+1 after 2^53", []storage.Heat{heat(3, 9, ch, 4, 1), heat(3, 10, ch, 4, 1), heat(4, 1<<53, ch, 4, 1)},
				3, []storage.Scored{{ID: 4, Score: 3}, {ID: 2, Score: 3}, {ID: 1, Score: 3}, {ID: 3, Score: 1.5}}},
			{"2^53+1 again, and 10", []storage.Heat{heat(3, 10, ch, 4, 1), heat(4, 1<<53+1, ch, 4, 1)},
				1, []storage.Scored{{ID: 4, Score: 4}, {ID: 2, Score: 3}, {ID: 1, Score: 3}, {ID: 3, Score: 1.5}}},
			{"another channel keeps its own marks", []storage.Heat{heat(0, 10, ch+1, 5, 1)},
				1, []storage.Scored{{ID: 4, Score: 4}, {ID: 2, Score: 3}, {ID: 1, Score: 3}, {ID: 3, Score: 1.5}}},
			{"another log's partition 0 keeps its own offsets", []storage.Heat{{Mark: storage.Mark{Log: "other-topic", Partition: 0, Offset: 10}, Channel: ch, Article: 5, Weight: 1}},
				1, []storage.Scored{{ID: 4, Score: 4}, {ID: 2, Score: 3}, {ID: 1, Score: 3}, {ID: 3, Score: 1.5}, {ID: 5, Score: 1}}},
			{"and its redelivery counts once", []storage.Heat{{Mark: storage.Mark{Log: "other-topic", Partition: 0, Offset: 10}, Channel: ch, Article: 5, Weight: 1}},
				0, []storage.Scored{{ID: 4, Score: 4}, {ID: 2, Score: 3}, {ID: 1, Score: 3}, {ID: 3, Score: 1.5}, {ID: 5, Score: 1}}},
		}
		for _, s := range steps {
			n, err := sets.AddHeat(ctx(t), s.heats)
			if err != nil || n != s.applied {
				t.Errorf("%s: AddHeat = %d, %v; want %d applied", s.name, n, err, s.applied)
			}
			hotIs(t, sets, ch, s.want, "after "+s.name)
		}
		hotIs(t, sets, ch+1, []storage.Scored{{ID: 5, Score: 1}}, "of the other channel")
	})

	t.Run("racing redeliveries count once", func(t *testing.T) {
		ch := uniqueChannel()
		var batch []storage.Heat
		for i := range 50 {
			batch = append(batch, heat(int32(i%3), int64(i), ch, int64(i%5+1), 1))
		}
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := sets.AddHeat(ctx(t), batch)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		if total != len(batch) {
			t.Errorf("8 racing AddHeat of one batch applied %d in all, want %d", total, len(batch))
		}
		hotIs(t, sets, ch, []storage.Scored{{ID: 5, Score: 10}, {ID: 4, Score: 10}, {ID: 3, Score: 10}, {ID: 2, Score: 10}, {ID: 1, Score: 10}}, "after racing redeliveries")
	})

	t.Run("a malformed heat writes nothing", func(t *testing.T) {
		ch := uniqueChannel()
		for name, bad := range map[string]storage.Heat{
			"article 0":       heat(0, 2, ch, 0, 1),
			"weight 0":        heat(0, 2, ch, 1, 0),
			"negative weight": heat(0, 2, ch, 1, -1),
			"negative offset": heat(0, -1, ch, 1, 1),
		} {
			if n, err := sets.AddHeat(ctx(t), []storage.Heat{heat(0, 1, ch, 1, 1), bad}); err == nil || n != 0 {
				t.Errorf("AddHeat with %s = %d, %v; want an error", name, n, err)
			}
		}
		hotIs(t, sets, ch, nil, "after malformed batches")
	})
}

func cool(t *testing.T, sets storage.Sets) {
	t0 := time.Unix(1_700_000_000, 0)
	const hl = time.Hour
	t.Run("first cool only stamps, then scores halve per half-life", func(t *testing.T) {
		ch := uniqueChannel()
		if _, err := sets.AddHeat(ctx(t), []storage.Heat{heat(0, 1, ch, 1, 8), heat(0, 1, ch, 2, 4), heat(0, 1, ch, 3, 0.004)}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct {
			name string
			now  time.Time
			want []storage.Scored
		}{
			{"the first cool", t0, []storage.Scored{{ID: 1, Score: 8}, {ID: 2, Score: 4}, {ID: 3, Score: 0.004}}},
			{"one half-life later", t0.Add(hl), []storage.Scored{{ID: 1, Score: 4}, {ID: 2, Score: 2}, {ID: 3, Score: 0.002}}},
			{"the same now again", t0.Add(hl), []storage.Scored{{ID: 1, Score: 4}, {ID: 2, Score: 2}, {ID: 3, Score: 0.002}}},
			{"an earlier now", t0.Add(hl / 2), []storage.Scored{{ID: 1, Score: 4}, {ID: 2, Score: 2}, {ID: 3, Score: 0.002}}},
			// 0.0005 is below the floor of 1e-3: no longer hot at all.
			{"two half-lives later", t0.Add(3 * hl), []storage.Scored{{ID: 1, Score: 1}, {ID: 2, Score: 0.5}}},
		} {
			if err := sets.Cool(ctx(t), ch, s.now, hl); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			hotIs(t, sets, ch, s.want, "after "+s.name)
		}
		if err := sets.Cool(ctx(t), ch, t0.Add(4*hl), 0); err == nil {
			t.Error("Cool with half-life 0 succeeded")
		}
		hotIs(t, sets, ch, []storage.Scored{{ID: 1, Score: 1}, {ID: 2, Score: 0.5}}, "after a refused Cool")
	})

	t.Run("racing coolers decay once", func(t *testing.T) {
		ch := uniqueChannel()
		if _, err := sets.AddHeat(ctx(t), []storage.Heat{heat(0, 1, ch, 1, 1024)}); err != nil {
			t.Fatal(err)
		}
		if err := sets.Cool(ctx(t), ch, t0, hl); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sets.Cool(ctx(t), ch, t0.Add(hl), hl); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		hotIs(t, sets, ch, []storage.Scored{{ID: 1, Score: 512}}, "after 8 racing coolings one half-life on")
	})
}

func exposure(p int32, offset int64, strategy, user string, exposures, clicks int64) storage.Exposure {
	return storage.Exposure{Mark: storage.Mark{Partition: p, Offset: offset}, Strategy: strategy, User: user, Exposures: exposures, Clicks: clicks}
}

// countersOf is Counters of the given strategies only: a shared server holds
// other runs'.
func countersOf(t *testing.T, sets storage.Sets, strategies ...string) map[string]map[string]storage.UserCounts {
	t.Helper()
	all, err := sets.Counters(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]storage.UserCounts{}
	for _, s := range strategies {
		if users, ok := all[s]; ok {
			out[s] = users
		}
	}
	return out
}

func countersEqual(a, b map[string]map[string]storage.UserCounts) bool {
	return len(a) == len(b) && !slices.ContainsFunc(slices.Collect(func(yield func(string) bool) {
		for s := range a {
			if !yield(s) {
				return
			}
		}
	}), func(s string) bool { return !mapsEqual(a[s], b[s]) })
}

func addExposures(t *testing.T, sets storage.Sets) {
	t.Run("counters are exact under redelivery, per strategy", func(t *testing.T) {
		p := unique(t)
		a, b := p+"Algo-1", p+"{exp-a}|exp-b"
		first := []storage.Exposure{
			exposure(0, 1, a, "u1", 10, 0), exposure(0, 2, a, "u1", 0, 1),
			exposure(0, 2, b, "u2", 5, 1), exposure(1, 1, a, "u2", 3, 0),
		}
		steps := []struct {
			name      string
			exposures []storage.Exposure
			applied   int
			want      map[string]map[string]storage.UserCounts
		}{
			{"first delivery", first, 4, map[string]map[string]storage.UserCounts{
				a: {"u1": {Exposures: 10, Clicks: 1}, "u2": {Exposures: 3}},
				b: {"u2": {Exposures: 5, Clicks: 1}},
			}},
			{"the batch again", first, 0, map[string]map[string]storage.UserCounts{
				a: {"u1": {Exposures: 10, Clicks: 1}, "u2": {Exposures: 3}},
				b: {"u2": {Exposures: 5, Clicks: 1}},
			}},
			{"a later offset after a redelivered one", []storage.Exposure{exposure(0, 2, a, "u1", 100, 0), exposure(0, 3, a, "u1", 1, 1), exposure(0, 3, b, "u3", 2, 0)}, 2,
				map[string]map[string]storage.UserCounts{
					a: {"u1": {Exposures: 11, Clicks: 2}, "u2": {Exposures: 3}},
					b: {"u2": {Exposures: 5, Clicks: 1}, "u3": {Exposures: 2}},
				}},
		}
		for _, s := range steps {
			n, err := sets.AddExposures(ctx(t), s.exposures)
			if err != nil || n != s.applied {
				t.Errorf("%s: AddExposures = %d, %v; want %d applied", s.name, n, err, s.applied)
			}
			if got := countersOf(t, sets, a, b); !countersEqual(got, s.want) {
				t.Errorf("Counters after %s = %v, want %v", s.name, got, s.want)
			}
		}
	})

	t.Run("a malformed exposure writes nothing", func(t *testing.T) {
		s := unique(t)
		long := s + strings.Repeat("x", 201-len(s))
		for _, tt := range []struct {
			bad  storage.Exposure
			want string
		}{
			{exposure(0, 2, "", "u1", 1, 0), "empty strategy"},
			{exposure(0, 2, long, "u1", 1, 0), "201 bytes"},
			{exposure(0, 2, s, "", 1, 0), "empty user"},
			{exposure(0, 2, s, "u1", -1, 0), "counts"},
			{exposure(-1, 2, s, "u1", 1, 0), "partition"},
		} {
			n, err := sets.AddExposures(ctx(t), []storage.Exposure{exposure(0, 1, s, "u1", 1, 0), tt.bad})
			if err == nil || n != 0 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AddExposures with %+v = %d, %v; want an error saying %q", tt.bad, n, err, tt.want)
			}
		}
		if got := countersOf(t, sets, s, long); len(got) != 0 {
			t.Errorf("Counters after malformed batches = %v, want nothing", got)
		}
		fits := s + strings.Repeat("x", 200-len(s))
		if n, err := sets.AddExposures(ctx(t), []storage.Exposure{exposure(0, 1, fits, "u1", 1, 0)}); err != nil || n != 1 {
			t.Errorf("AddExposures with a strategy of 200 bytes = %d, %v; want 1 applied", n, err)
		}
	})
}
