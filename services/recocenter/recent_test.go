package recocenter

import (
	"slices"
	"testing"
	"time"
)

func TestRecentKeepsIDsBetweenOneAndTwoPeriods(t *testing.T) {
	t.Parallel()
	r := newRecent(time.Minute, 1000)
	now := time.Unix(1000, 0)
	r.now, r.turned = func() time.Time { return now }, now
	r.add("u", 3, []int64{1, 2})
	now = now.Add(90 * time.Second) // the next add turns a generation
	r.add("v", 3, []int64{9})
	if got := r.served("u", 3); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("after 1.5 periods served = %v, want [1 2]", got)
	}
	now = now.Add(time.Minute)
	r.add("v", 3, []int64{10})
	if got := r.served("u", 3); len(got) != 0 {
		t.Errorf("after 2.5 periods served = %v, want nothing", got)
	}
}

func TestRecentHoldsAtMostMaxReadersAGeneration(t *testing.T) {
	t.Parallel()
	r := newRecent(time.Hour, 2)
	for _, u := range []string{"a", "b", "c", "d", "e"} {
		r.add(u, 1, []int64{1})
	}
	if n := len(r.cur) + len(r.prev); n > 4 {
		t.Errorf("%d readers kept, want at most 2 generations of 2", n)
	}
	if got := r.served("e", 1); !slices.Equal(got, []int64{1}) {
		t.Errorf("newest reader's ids = %v, want [1]", got)
	}
}

func TestRecentPagesNewestFirstAtMostMaxPages(t *testing.T) {
	t.Parallel()
	r := newRecent(time.Hour, 10)
	for ts := int64(1); ts <= maxPages+2; ts++ {
		r.recorded("u", 3, ts*100, []int64{ts})
	}
	var stamps []int64
	for _, v := range r.pages("u", 3, 550) {
		stamps = append(stamps, v.Timestamp)
	}
	if want := []int64{500, 400, 300}; !slices.Equal(stamps, want) {
		t.Errorf("pages at or before 550 = %v, want %v (the oldest past maxPages dropped)", stamps, want)
	}
	if got := r.pages("u", 4, 1000); len(got) != 0 {
		t.Errorf("another channel's pages = %v, want none", got)
	}
}
