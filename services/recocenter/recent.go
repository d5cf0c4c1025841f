package recocenter

import (
	"strconv"
	"sync"
	"time"
)

// recentPeriod and recentReaders size recent: a period well above the served
// log's applier lag and a Redis restart, and room for the readers active in
// one (a full generation turns early, and the oldest ids go first).
const (
	recentPeriod  = 2 * time.Minute
	recentReaders = 200_000
)

// recent is what this process served each reader lately, in memory. The seen
// sets in Redis are the claim every served id passes; recent covers the two
// moments they cannot:
//   - while they are down, the fallback claim filters by history, which two
//     concurrent refreshes of one reader read alike: checking and adding to
//     recent under one lock keeps them from serving the same ids (the peers'
//     ring hash keeps a reader's refreshes in one process, pkg/server);
//   - when they come back empty, they are seeded from history, which may not
//     yet hold what was served while it was slow (the served log's applier
//     has not caught up): the seed adds recent.
//
// It keeps each reader's ids for between one and two periods (two generations
// of maps, the older dropped at each turn), and at most maxReaders readers
// per generation (a full generation turns early): bounded memory whatever the
// traffic, 8 bytes an id.
type recent struct {
	mu        sync.Mutex
	cur, prev map[string][]int64
	// unsynced is what the fallback claim served while the seen sets were
	// unreachable: a seen set that outlived the outage lacks it, and gets
	// it before the reader's next claim there (takeUnsynced).
	unsynced   map[string][]int64
	turned     time.Time
	period     time.Duration
	maxReaders int
	now        func() time.Time
}

func newRecent(period time.Duration, maxReaders int) *recent {
	return &recent{cur: map[string][]int64{}, prev: map[string][]int64{}, unsynced: map[string][]int64{}, turned: time.Now(), period: period, maxReaders: maxReaders, now: time.Now}
}

func recentKey(user string, channel int32) string {
	return user + "\x00" + strconv.Itoa(int(channel))
}

// add remembers ids as served to user in channel.
func (r *recent) add(user string, channel int32, ids []int64) {
	if len(ids) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addLocked(recentKey(user, channel), ids)
}

func (r *recent) addLocked(key string, ids []int64) {
	if now := r.now(); now.Sub(r.turned) >= r.period || len(r.cur) >= r.maxReaders {
		r.prev, r.cur, r.turned = r.cur, make(map[string][]int64, len(r.cur)), now
		if len(r.unsynced) > r.maxReaders {
			// An outage longer than anyone's memory: what the seen sets
			// miss by then, history (seeded from) has.
			r.unsynced = map[string][]int64{}
		}
	}
	r.cur[key] = append(r.cur[key], ids...)
}

// served returns what was served to user in channel lately.
func (r *recent) served(user string, channel int32) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	return append(append([]int64(nil), r.prev[key]...), r.cur[key]...)
}

// claim is the fallback claim: of ids, those neither in seen (the reader's
// history of the channel and channel 0) nor served lately in the channel or in
// channel 0, which it then remembers as served. Atomic among the claims of
// this process.
func (r *recent) claim(user string, channel int32, seen map[int64]bool, ids []int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	for _, ch := range seenChannels(channel) {
		k := recentKey(user, ch)
		for _, gen := range []map[string][]int64{r.prev, r.cur} {
			for _, id := range gen[k] {
				seen[id] = true
			}
		}
	}
	var unseen []int64
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			unseen = append(unseen, id)
		}
	}
	if len(unseen) > 0 {
		r.addLocked(key, unseen)
		r.unsynced[key] = append(r.unsynced[key], unseen...)
	}
	return unseen
}

// takeUnsynced returns and forgets what the fallback claim served user in
// channel; putBack returns it after a failed attempt to sync it.
func (r *recent) takeUnsynced(user string, channel int32) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	ids := r.unsynced[key]
	delete(r.unsynced, key)
	return ids
}

func (r *recent) putBack(user string, channel int32, ids []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	r.unsynced[key] = append(r.unsynced[key], ids...)
}
