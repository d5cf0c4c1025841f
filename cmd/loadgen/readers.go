package main

import (
	"math/rand/v2"
	"sync"
)

// channels is how many channels a reader can be warmed in (0..24).
const channels = 25

// minQueue is how many warmed readers take keeps in rotation: a reader taken
// again while its last refresh is in flight could have its refreshes recorded
// out of order, and the older one answered as a history page.
const minQueue = 64

// reader is one user's feed in one channel, with the time stamp of its first
// refresh and the cache hits it has left.
type reader struct {
	user    string
	channel int32
	first   int64
	hits    int
}

// readers hands out fresh readers (a user's channel never refreshed), keeps
// the warmed ones in rotation for cache hits and remembers every refreshed one
// for history pages.
//
// A refresh of a warmed reader pops n ids from their cache (tier 1 holds
// cache.tier1_size of a ranking, 100 by default), so each warmed reader has
// only a few cache hits in it before the cache refills from tier 2 or
// recomputes: the rotation gives each perReader hits, then drops it. Fresh
// readers come in rounds: round 0 is each user's own channel (--channel), the
// one cache misses are measured in; later rounds are the user's other
// channels, which warming uses once round 0 is spent.
type readers struct {
	mu        sync.Mutex
	users     []string
	primary   func(i int) int32
	perReader int
	next      int
	queue     []*reader
	budget    int
	served    []*reader
}

func newReaders(users []string, primary func(i int) int32, perReader int) *readers {
	return &readers{users: users, primary: primary, perReader: perReader}
}

// fresh returns a reader never refreshed: of round 0 only, unless anyRound.
func (rs *readers) fresh(anyRound bool) (string, int32, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	round, i := rs.next/len(rs.users), rs.next%len(rs.users)
	if round >= channels || round > 0 && !anyRound {
		return "", 0, false
	}
	rs.next++
	return rs.users[i], (rs.primary(i) + int32(round)) % channels, true
}

// freshLeft is how many readers of round 0 are left.
func (rs *readers) freshLeft() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return max(0, len(rs.users)-rs.next)
}

// warmed adds a reader whose first refresh succeeded at stamp first.
func (rs *readers) warmed(user string, channel int32, first int64) {
	r := &reader{user: user, channel: channel, first: first, hits: rs.perReader}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.served = append(rs.served, r)
	if r.hits > 0 {
		rs.queue = append(rs.queue, r)
		rs.budget += r.hits
	}
}

// take returns the next warmed reader for a cache hit, round robin; false
// when fewer than minQueue are left.
func (rs *readers) take() (*reader, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.queue) <= minQueue {
		return nil, false
	}
	r := rs.queue[0]
	rs.queue = rs.queue[1:]
	r.hits--
	rs.budget--
	if r.hits > 0 {
		rs.queue = append(rs.queue, r)
	}
	return r, true
}

// hitsLeft is how many cache hits take can still give.
func (rs *readers) hitsLeft() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return max(0, rs.budget-minQueue*rs.perReader)
}

// anyServed returns a random reader that got a refresh.
func (rs *readers) anyServed(rng *rand.Rand) (*reader, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.served) == 0 {
		return nil, false
	}
	return rs.served[rng.IntN(len(rs.served))], true
}
