package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/internal/originalclient"
)

// Call kinds.
const (
	kindRefresh = iota // pull to refresh, time_stamp = now
	kindPair           // one of two concurrent refreshes with one time_stamp
	kindHistory        // a page back: time_stamp = an earlier response's time_stamp
)

// call is one user_recommend as the client saw it.
type call struct {
	start, end time.Duration // since the recorder's epoch
	reader     int
	channel    int32
	stamp      int64
	kind       int
	code       codes.Code
	msg        string
	peer       string
	ids        []int64
	refresh    bool // OK with a non-empty exposure
	respStamp  int64
}

// recorder keeps every call.
type recorder struct {
	epoch time.Time
	mu    sync.Mutex
	calls []call
}

func (r *recorder) since() time.Duration { return time.Since(r.epoch) }

func (r *recorder) add(c call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// errorFreeSince reports whether every call that ended in [from, now) succeeded
// and at least min did: the live test for "recovered" (the table's recovery
// time is computed afterwards from call start times).
func (r *recorder) errorFreeSince(from time.Duration, min int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := len(r.calls) - 1; i >= 0; i-- {
		c := &r.calls[i]
		if c.end < from {
			// calls are appended in end order, near enough; a few late ones
			// do not matter for the live check.
			break
		}
		if c.code != codes.OK {
			return false
		}
		n++
	}
	return n >= min
}

// reader is one simulated reader; one client at a time drives it, except for
// the same-stamp pairs, which are two concurrent calls on purpose.
type reader struct {
	mu     sync.Mutex
	id     string
	lastTS int64
	// prev holds, per channel, the time_stamps responses handed back (the
	// previous refresh's stamp), to page back with.
	prev [numChannels][]int64
}

// nextStamp is now in milliseconds, strictly after the reader's last stamp.
func (r *reader) nextStamp() int64 {
	ts := time.Now().UnixMilli()
	if ts <= r.lastTS {
		ts = r.lastTS + 1
	}
	r.lastTS = ts
	return ts
}

// peerConn adds a grpc.Peer option to every call, so the test knows which
// routing process served it.
type peerConn struct {
	cc *grpc.ClientConn
	p  peer.Peer
}

func (c *peerConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	c.p = peer.Peer{}
	return c.cc.Invoke(ctx, method, args, reply, append(opts, grpc.Peer(&c.p))...)
}

func (c *peerConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.cc.NewStream(ctx, desc, method, opts...)
}

func (c *peerConn) peerAddr() string {
	if c.p.Addr == nil {
		return ""
	}
	return c.p.Addr.String()
}

// client is one of the load's workers: two original-protobuf clients, for the
// two halves of a same-stamp pair.
type client struct {
	conns [2]*peerConn
	oc    [2]*originalclient.Client
}

func newClient(cc *grpc.ClientConn) (*client, error) {
	c := &client{}
	for i := range c.conns {
		c.conns[i] = &peerConn{cc: cc}
		oc, err := originalclient.New(c.conns[i])
		if err != nil {
			return nil, err
		}
		c.oc[i] = oc
	}
	return c, nil
}

// loadConfig shapes the load.
type loadConfig struct {
	clients     int
	articleNum  int32
	pairShare   float64       // share of operations that are same-stamp pairs
	pageShare   float64       // share that are history pages
	think       time.Duration // mean pause between one client's operations
	callTimeout time.Duration
}

// load runs cfg.clients workers over readers until stop is closed.
type load struct {
	cfg     loadConfig
	readers []*reader
	rec     *recorder
	clients []*client
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newLoad(cc *grpc.ClientConn, cfg loadConfig, readers []string, rec *recorder) (*load, error) {
	l := &load{cfg: cfg, rec: rec, stop: make(chan struct{})}
	for _, id := range readers {
		l.readers = append(l.readers, &reader{id: id})
	}
	for range cfg.clients {
		c, err := newClient(cc)
		if err != nil {
			return nil, err
		}
		l.clients = append(l.clients, c)
	}
	return l, nil
}

func (l *load) start() {
	for i, c := range l.clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			// Spread the first calls over one pause.
			if !l.sleep(time.Duration(rng.Int64N(int64(l.cfg.think) + 1))) {
				return
			}
			for {
				l.operation(c, rng)
				if !l.sleep(time.Duration(float64(l.cfg.think) * (0.5 + rng.Float64()))) {
					return
				}
			}
		}()
	}
}

// sleep pauses d, false when the load is stopping.
func (l *load) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.stop:
		return false
	case <-t.C:
		return true
	}
}

// halt stops the workers and waits for their last calls (each bounded by
// callTimeout).
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// operation is one reader action: a refresh, a same-stamp pair or a page back.
func (l *load) operation(c *client, rng *rand.Rand) {
	var r *reader
	var idx int
	for range 8 {
		idx = rng.IntN(len(l.readers))
		if l.readers[idx].mu.TryLock() {
			r = l.readers[idx]
			break
		}
	}
	if r == nil {
		return
	}
	defer r.mu.Unlock()
	ch := int32(rng.IntN(numChannels))
	x := rng.Float64()
	switch {
	case x < l.cfg.pairShare:
		ts := r.nextStamp()
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.do(c, i, r, idx, ch, ts, kindPair)
			}()
		}
		wg.Wait()
	case x < l.cfg.pairShare+l.cfg.pageShare && len(r.prev[ch]) > 0:
		ts := r.prev[ch][rng.IntN(len(r.prev[ch]))]
		l.do(c, 0, r, idx, ch, ts, kindHistory)
	default:
		l.do(c, 0, r, idx, ch, r.nextStamp(), kindRefresh)
	}
}

func (l *load) do(c *client, half int, r *reader, idx int, ch int32, ts int64, kind int) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.callTimeout)
	defer cancel()
	cl := call{start: l.rec.since(), reader: idx, channel: ch, stamp: ts, kind: kind}
	tr, err := c.oc[half].UserRecommend(ctx, r.id, ch, l.cfg.articleNum, ts)
	cl.end = l.rec.since()
	cl.peer = c.conns[half].peerAddr()
	if err != nil {
		st := status.Convert(err)
		cl.code, cl.msg = st.Code(), st.Message()
		if cl.code == codes.OK { // a non-status error
			cl.code, cl.msg = codes.Unknown, err.Error()
		}
	} else {
		cl.refresh = tr.Exposure != ""
		cl.respStamp = tr.TimeStamp
		for _, it := range tr.Recommends {
			cl.ids = append(cl.ids, it.ArticleID)
		}
		if tr.TimeStamp > 0 && kind != kindHistory {
			if kind == kindRefresh || half == 0 {
				r.prev[ch] = append(r.prev[ch], tr.TimeStamp)
			}
		}
	}
	l.rec.add(cl)
}

func (c call) String() string {
	return fmt.Sprintf("reader %d ch %d ts %d kind %d: %v %s", c.reader, c.channel, c.stamp, c.kind, c.code, c.msg)
}
