package recocenter

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
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
// It also keeps the refreshes recorded lately (time stamp and ids): history
// has them once the applier wrote them, which a history page asked for right
// after its refresh must not wait for (pages).
//
// It keeps each reader's ids for between one and two periods (two generations
// of maps, the older dropped at each turn), and at most maxReaders readers
// per generation (a full generation turns early): bounded memory whatever the
// traffic, 8 bytes an id and at most maxPages refreshes a reader.
type recent struct {
	mu        sync.Mutex
	cur, prev map[string]*served
	// unsynced is what the fallback claim served while the seen sets were
	// unreachable: a seen set that outlived the outage lacks it, and gets
	// it before the reader's next claim there (takeUnsynced).
	unsynced   map[string][]int64
	turned     time.Time
	period     time.Duration
	maxReaders int
	now        func() time.Time
}

// served is what recent holds of one reader's channel in one generation.
type served struct {
	ids   []int64
	pages []storage.Version // recorded refreshes, oldest first
}

// maxPages bounds the refreshes recent keeps of a reader's channel: more than
// a reader pages back through while history catches up.
const maxPages = 4

func newRecent(period time.Duration, maxReaders int) *recent {
	return &recent{cur: map[string]*served{}, prev: map[string]*served{}, unsynced: map[string][]int64{}, turned: time.Now(), period: period, maxReaders: maxReaders, now: time.Now}
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
	e := r.entryLocked(key)
	e.ids = append(e.ids, ids...)
}

// entryLocked is key's entry in the current generation, which it first turns
// when due.
func (r *recent) entryLocked(key string) *served {
	if now := r.now(); now.Sub(r.turned) >= r.period || len(r.cur) >= r.maxReaders {
		r.prev, r.cur, r.turned = r.cur, make(map[string]*served, len(r.cur)), now
		if len(r.unsynced) > r.maxReaders {
			// An outage longer than anyone's memory: what the seen sets
			// miss by then, history (seeded from) has.
			r.unsynced = map[string][]int64{}
		}
	}
	e := r.cur[key]
	if e == nil {
		e = &served{}
		r.cur[key] = e
	}
	return e
}

// served returns what was served to user in channel lately.
func (r *recent) served(user string, channel int32) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	var ids []int64
	for _, gen := range []map[string]*served{r.prev, r.cur} {
		if e := gen[key]; e != nil {
			ids = append(ids, e.ids...)
		}
	}
	return ids
}

// recorded remembers the refresh at ts that served ids, once it is on the
// served log.
func (r *recent) recorded(user string, channel int32, ts int64, ids []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entryLocked(recentKey(user, channel))
	if len(e.pages) == maxPages {
		e.pages = slices.Delete(e.pages, 0, 1)
	}
	e.pages = append(e.pages, storage.Version{Timestamp: ts, IDs: slices.Clone(ids)})
}

// pages returns the refreshes recorded lately with time stamp <= at, newest
// first.
func (r *recent) pages(user string, channel int32, at int64) []storage.Version {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	var out []storage.Version
	for _, gen := range []map[string]*served{r.cur, r.prev} {
		if e := gen[key]; e != nil {
			for _, v := range slices.Backward(e.pages) {
				if v.Timestamp <= at {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// claim is the fallback claim: of ids, those neither in seen (the reader's
// history of the channel and channel 0) nor served lately in the channel or in
// channel 0, which it then remembers as served. Atomic among the claims of
// this process.
func (r *recent) claim(user string, channel int32, seen map[int64]bool, ids []int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	unseen := r.unseenLocked(user, channel, seen, ids)
	if len(unseen) > 0 {
		key := recentKey(user, channel)
		r.addLocked(key, unseen)
		r.unsynced[key] = append(r.unsynced[key], unseen...)
	}
	return unseen
}

// unseen returns the ids of ids neither in seen nor served lately to user in
// channel or channel 0, remembering nothing.
func (r *recent) unseen(user string, channel int32, seen map[int64]bool, ids []int64) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unseenLocked(user, channel, seen, ids)
}

// unseenLocked is unseen with r.mu held; it adds what recent holds to seen.
func (r *recent) unseenLocked(user string, channel int32, seen map[int64]bool, ids []int64) []int64 {
	for _, ch := range seenChannels(channel) {
		k := recentKey(user, ch)
		for _, gen := range []map[string]*served{r.prev, r.cur} {
			if e := gen[k]; e != nil {
				for _, id := range e.ids {
					seen[id] = true
				}
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

// takeSomeUnsynced returns and forgets what the fallback claim served, by
// reader and channel, for at most max of them.
func (r *recent) takeSomeUnsynced(max int) map[readerChannel][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.unsynced) == 0 {
		return nil
	}
	out := make(map[readerChannel][]int64, min(max, len(r.unsynced)))
	for key, ids := range r.unsynced {
		if len(out) == max {
			break
		}
		out[parseRecentKey(key)] = ids
		delete(r.unsynced, key)
	}
	return out
}

// readerChannel is a reader's channel, as recent's keys name it.
type readerChannel struct {
	user    string
	channel int32
}

func parseRecentKey(key string) readerChannel {
	i := strings.LastIndexByte(key, 0)
	n, _ := strconv.Atoi(key[i+1:]) // recentKey wrote it
	return readerChannel{user: key[:i], channel: int32(n)}
}

func (r *recent) putBack(user string, channel int32, ids []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := recentKey(user, channel)
	r.unsynced[key] = append(r.unsynced[key], ids...)
}
