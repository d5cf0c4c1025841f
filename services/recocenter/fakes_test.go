package recocenter

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// In-memory fakes of reco-center's ports. Every fake method goes through
// port.enter, which counts the call and applies the fault configured for the
// method: fail with an error, hang until the context ends, or wait on a gate.
// Like a gRPC client, a fake refuses a call whose context has already ended.

// testError is a constant error for the fakes to fail with.
type testError string

func (e testError) Error() string { return string(e) }

const errBoom = testError("boom")

// fault is how a fake method misbehaves.
type fault struct {
	err  error // returned by the failing calls
	hang bool  // block until the context ends, then return its error
	// skip lets the first skip calls succeed; times then bounds how many calls
	// fail (0: every later call).
	skip, times int
}

// port is the call counting and fault injection every fake shares.
type port struct {
	mu     sync.Mutex
	faults map[string]fault
	gates  map[string]chan struct{}
	calls  map[string]int
	// called is signalled (without blocking) on every call, for tests that
	// wait for callers to reach a point.
	called chan string
}

func newPort() port {
	return port{faults: map[string]fault{}, gates: map[string]chan struct{}{}, calls: map[string]int{}, called: make(chan string, 1024)}
}

// failOn makes method misbehave as f.
func (p *port) failOn(method string, f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[method] = f
}

// failing says whether a fault is set on method.
func (p *port) failing(method string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.faults[method]
	return ok
}

// gate makes calls of method wait until the returned release is called (or
// their context ends).
func (p *port) gate(method string) (release func()) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.gates[method] = ch
	p.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// count is how many times method was called.
func (p *port) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

// total is how many calls the fake got, of any method.
func (p *port) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		n += c
	}
	return n
}

// waitCalls blocks until method has been called n times.
func (p *port) waitCalls(t *testing.T, method string, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for p.count(method) < n {
		select {
		case <-p.called:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s called %d times, want %d", method, p.count(method), n)
		}
	}
}

func (p *port) enter(ctx context.Context, method string) error {
	p.mu.Lock()
	p.calls[method]++
	n := p.calls[method]
	f, faulty := p.faults[method]
	gate := p.gates[method]
	p.mu.Unlock()
	select {
	case p.called <- method:
	default:
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !faulty || n <= f.skip || (f.times > 0 && n > f.skip+f.times) {
		return nil
	}
	if f.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

func key(user string, channel int32) string { return user + "/" + strconv.Itoa(int(channel)) }

// fakeCache is a reader's queue of ranked ids. Take is atomic and claims in
// the readers' seen sets (claims), starting a refresh by their stamps; like
// the cache service, a later Store may queue an id again: the claim is what
// serves it once.
type fakeCache struct {
	port
	claims *fakeClaims
	mu     sync.Mutex
	queued map[string][]int64
	stored [][]int64
}

func newFakeCache(claims *fakeClaims) *fakeCache {
	return &fakeCache{port: newPort(), claims: claims, queued: map[string][]int64{}}
}

// put queues ids for the reader's channel.
func (c *fakeCache) put(user string, channel int32, ids ...int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued[key(user, channel)] = append(c.queued[key(user, channel)], ids...)
}

// queue is what is queued for the reader's channel.
func (c *fakeCache) queue(user string, channel int32) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.queued[key(user, channel)])
}

func (c *fakeCache) Take(ctx context.Context, user string, channel int32, at int64, n int) (storage.Taken, error) {
	if err := c.enter(ctx, "Take"); err != nil {
		return storage.Taken{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.claims
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !cl.ready(user, channel) {
		return storage.Taken{}, storage.ErrUnseeded
	}
	k := key(user, channel)
	var t storage.Taken
	if at > 0 {
		t.Last = cl.stamps[k]
		if at <= t.Last {
			t.Older = true
			return t, nil
		}
		cl.stamps[k] = at
	}
	q := c.queued[k]
	for len(q) > 0 && len(t.IDs) < n {
		id := q[0]
		q = q[1:]
		if cl.claimLocked(user, channel, id) {
			t.IDs = append(t.IDs, id)
		}
	}
	c.queued[k] = q
	t.Dry = len(t.IDs) < n
	return t, nil
}

func (c *fakeCache) Store(ctx context.Context, user string, channel int32, ranked []int64) error {
	if err := c.enter(ctx, "Store"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(user, channel)
	c.stored = append(c.stored, slices.Clone(ranked))
	for _, id := range ranked {
		if !slices.Contains(c.queued[k], id) {
			c.queued[k] = append(c.queued[k], id)
		}
	}
	return nil
}

// fakeRecaller offers fixed candidates per channel.
type fakeRecaller struct {
	port
	cands map[int32][]feed.Candidate

	mu        sync.Mutex
	sources   [][]feed.Source
	deadlines []time.Duration // how long each Recall's context had left
	consumed  []feed.ReadRuns
}

func newFakeRecaller() *fakeRecaller {
	return &fakeRecaller{port: newPort(), cands: map[int32][]feed.Candidate{}}
}

func (r *fakeRecaller) Recall(ctx context.Context, user string, channel int32, sources []feed.Source) ([]feed.Candidate, []feed.ReadRuns, error) {
	r.mu.Lock()
	r.sources = append(r.sources, slices.Clone(sources))
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	r.deadlines = append(r.deadlines, left)
	r.mu.Unlock()
	if err := r.enter(ctx, "Recall"); err != nil {
		return nil, nil, err
	}
	return slices.Clone(r.cands[channel]), []feed.ReadRuns{{Source: feed.SourceALS, Through: 1}}, nil
}

func (r *fakeRecaller) Consume(ctx context.Context, user string, channel int32, read []feed.ReadRuns) error {
	if err := r.enter(ctx, "Consume"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consumed = append(r.consumed, read...)
	return nil
}

// fakePopular holds each channel's hot and new articles.
type fakePopular struct {
	port
	ids map[int32][]int64

	mu sync.Mutex
	n  []int // the n of each call
}

func newFakePopular() *fakePopular { return &fakePopular{port: newPort(), ids: map[int32][]int64{}} }

func (p *fakePopular) Popular(ctx context.Context, channel int32, n int) ([]int64, error) {
	p.mu.Lock()
	p.n = append(p.n, n)
	p.mu.Unlock()
	if err := p.enter(ctx, "Popular"); err != nil {
		return nil, err
	}
	ids := p.ids[channel]
	return slices.Clone(ids[:min(n, len(ids))]), nil
}

// fakeRanker ranks by descending id, so its order is never the recall order
// of the tests' candidates.
type fakeRanker struct {
	port
	mu     sync.Mutex
	models []feed.Model
	ids    [][]int64
}

func newFakeRanker() *fakeRanker { return &fakeRanker{port: newPort()} }

func (s *fakeRanker) Rank(ctx context.Context, user string, channel int32, model feed.Model, ids []int64) ([]int64, error) {
	s.mu.Lock()
	s.models = append(s.models, model)
	s.ids = append(s.ids, slices.Clone(ids))
	s.mu.Unlock()
	if err := s.enter(ctx, "Rank"); err != nil {
		return nil, err
	}
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b int64) int { return int(b - a) })
	return out, nil
}

// fakeHistory is history_recommend: per reader and channel, versions newest
// first; Record merges with a version at the same stamp.
type fakeHistory struct {
	port
	mu       sync.Mutex
	versions map[string][]storage.Version
	channels [][]int32 // the channels of each Seen call
}

var _ storage.History = (*fakeHistory)(nil)

func newFakeHistory() *fakeHistory {
	return &fakeHistory{port: newPort(), versions: map[string][]storage.Version{}}
}

// add records ids at ts without counting a call.
func (h *fakeHistory) add(user string, channel int32, ts int64, ids ...int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.merge(key(user, channel), ts, ids)
}

func (h *fakeHistory) merge(k string, ts int64, ids []int64) {
	vs := h.versions[k]
	i := slices.IndexFunc(vs, func(v storage.Version) bool { return v.Timestamp <= ts })
	if i >= 0 && vs[i].Timestamp == ts {
		for _, id := range ids {
			if !slices.Contains(vs[i].IDs, id) {
				vs[i].IDs = append(vs[i].IDs, id)
			}
		}
		return
	}
	if i < 0 {
		i = len(vs)
	}
	h.versions[k] = slices.Insert(vs, i, storage.Version{Timestamp: ts, IDs: slices.Clone(ids)})
}

// at is the version recorded at ts, nil if none.
func (h *fakeHistory) at(user string, channel int32, ts int64) []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.versions[key(user, channel)] {
		if v.Timestamp == ts {
			return slices.Clone(v.IDs)
		}
	}
	return nil
}

func (h *fakeHistory) Newest(ctx context.Context, user string, channel int32) (int64, error) {
	if err := h.enter(ctx, "Newest"); err != nil {
		return 0, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if vs := h.versions[key(user, channel)]; len(vs) > 0 {
		return vs[0].Timestamp, nil
	}
	return 0, nil
}

func (h *fakeHistory) Page(ctx context.Context, user string, channel int32, at int64) ([]storage.Version, error) {
	if err := h.enter(ctx, "Page"); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []storage.Version
	for _, v := range h.versions[key(user, channel)] {
		if v.Timestamp <= at && len(out) < 2 {
			out = append(out, storage.Version{Timestamp: v.Timestamp, IDs: slices.Clone(v.IDs)})
		}
	}
	return out, nil
}

func (h *fakeHistory) Seen(ctx context.Context, user string, channels []int32) (map[int64]bool, error) {
	h.mu.Lock()
	h.channels = append(h.channels, slices.Clone(channels))
	h.mu.Unlock()
	if err := h.enter(ctx, "Seen"); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[int64]bool{}
	for _, ch := range channels {
		for _, v := range h.versions[key(user, ch)] {
			for _, id := range v.IDs {
				seen[id] = true
			}
		}
	}
	return seen, nil
}

func (h *fakeHistory) Record(ctx context.Context, user string, channel int32, ts int64, ids []int64) error {
	if err := h.enter(ctx, "Record"); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.merge(key(user, channel), ts, ids)
	return nil
}

// fakeClaims are the readers' seen sets: Claim is atomic, checks the channel
// and channel 0, and answers ErrUnseeded for a set Seed has not built. Like a
// Redis that has been serving a while, a set is built from history the first
// time it is touched (from, without counting a Seen call), until lose: then
// the sets are gone, as after a Redis restart, and only Seed rebuilds them.
type fakeClaims struct {
	port
	from   *fakeHistory
	mu     sync.Mutex
	lost   bool
	seen   map[string]map[int64]bool
	seeded map[string]bool
	// stamps are the newest refresh of each seeded set, as TakeUnseen keeps
	// it.
	stamps map[string]int64
}

var _ storage.ServedClaims = (*fakeClaims)(nil)

func newFakeClaims(from *fakeHistory) *fakeClaims {
	return &fakeClaims{port: newPort(), from: from, seen: map[string]map[int64]bool{}, seeded: map[string]bool{}, stamps: map[string]int64{}}
}

// lose forgets every seen set, as Redis restarted empty would.
func (c *fakeClaims) lose() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost, c.seen, c.seeded, c.stamps = true, map[string]map[int64]bool{}, map[string]bool{}, map[string]int64{}
}

// warm builds k's set from history, unless the sets were lost.
func (c *fakeClaims) warm(user string, channel int32) {
	k := key(user, channel)
	if c.lost || c.seeded[k] {
		return
	}
	if c.seen[k] == nil { // a seed adds history to what was claimed provisionally
		c.seen[k] = map[int64]bool{}
	}
	c.seeded[k] = true
	c.from.mu.Lock()
	defer c.from.mu.Unlock()
	for _, v := range c.from.versions[k] {
		for _, id := range v.IDs {
			c.seen[k][id] = true
		}
		c.stamps[k] = max(c.stamps[k], v.Timestamp)
	}
}

// ready warms the sets a claim in channel checks and says whether both are
// seeded; c.mu is held.
func (c *fakeClaims) ready(user string, channel int32) bool {
	c.warm(user, channel)
	c.warm(user, 0)
	return c.seeded[key(user, channel)] && c.seeded[key(user, 0)]
}

// claimLocked claims id in channel unless channel or channel 0 saw it; c.mu
// is held and the sets are ready.
func (c *fakeClaims) claimLocked(user string, channel int32, id int64) bool {
	k, k0 := key(user, channel), key(user, 0)
	if c.seen[k][id] || c.seen[k0][id] {
		return false
	}
	c.seen[k][id] = true
	return true
}

// served is what the reader's channel set holds, sorted.
func (c *fakeClaims) served(user string, channel int32) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int64
	for id := range c.seen[key(user, channel)] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (c *fakeClaims) Claim(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) ([]int64, error) {
	if err := c.enter(ctx, "Claim"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready(user, channel) {
		return nil, storage.ErrUnseeded
	}
	var out []int64
	for _, id := range ids {
		if c.claimLocked(user, channel, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// ClaimProvisional fails as Claim does (failOn "Claim": the same Redis).
func (c *fakeClaims) ClaimProvisional(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) ([]int64, error) {
	if err := c.enter(ctx, "Claim"); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warm(user, channel)
	c.warm(user, 0)
	if c.seen[key(user, channel)] == nil {
		c.seen[key(user, channel)] = map[int64]bool{}
	}
	var out []int64
	for _, id := range ids {
		if c.claimLocked(user, channel, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

func (c *fakeClaims) Seed(ctx context.Context, user string, channel int32, seen []int64, last int64, ttl time.Duration) error {
	if err := c.enter(ctx, "Seed"); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := key(user, channel)
	if c.seen[k] == nil {
		c.seen[k] = map[int64]bool{}
	}
	for _, id := range seen {
		c.seen[k][id] = true
	}
	c.seeded[k] = true
	c.stamps[k] = max(c.stamps[k], last)
	return nil
}

// fakeServedLog is the served-ids log: what was appended, in order. Its
// applier has no lag: an entry is in history (applied) as it is appended,
// unless history's writes fail or the applier is stalled.
type fakeServedLog struct {
	port
	applied *fakeHistory
	stalled bool // set before use: the applier applies nothing
	mu      sync.Mutex
	entries []storage.Version
	claimed []bool // each entry's claimed
}

func newFakeServedLog(applied *fakeHistory) *fakeServedLog {
	return &fakeServedLog{port: newPort(), applied: applied}
}

func (l *fakeServedLog) Append(ctx context.Context, user string, channel int32, ts int64, ids []int64, claimed bool) error {
	if err := l.enter(ctx, "Append"); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, storage.Version{Timestamp: ts, IDs: slices.Clone(ids)})
	l.claimed = append(l.claimed, claimed)
	// A history that fails its writes takes none from the applier either.
	if l.applied != nil && !l.stalled && !l.applied.failing("Record") {
		l.applied.add(user, channel, ts, ids...)
	}
	return nil
}

// env is one test's reco-center: its fakes, registry and observed logs.
type env struct {
	cfg     Config
	cache   *fakeCache
	recall  *fakeRecaller
	popular *fakePopular
	sort    *fakeRanker
	history *fakeHistory
	claims  *fakeClaims
	served  *fakeServedLog
	reg     *prometheus.Registry
	logs    *observer.ObservedLogs
	core    zapcore.Core
}

func newEnv() *env {
	core, logs := observer.New(zap.DebugLevel)
	e := &env{
		cfg:     Config{FillTimeout: time.Second, PopularNum: 10, PopularScan: 100, SeenTTL: time.Hour, HistoryTimeout: time.Second},
		recall:  newFakeRecaller(),
		popular: newFakePopular(),
		sort:    newFakeRanker(),
		history: newFakeHistory(),
		reg:     prometheus.NewRegistry(),
		logs:    logs,
		core:    core,
	}
	e.claims = newFakeClaims(e.history)
	e.cache = newFakeCache(e.claims)
	e.served = newFakeServedLog(e.history)
	return e
}

// center is the Center over the env's fakes.
func (e *env) center(t *testing.T) *Center {
	t.Helper()
	c, err := New(e.cfg, Ports{Cache: e.cache, Recall: e.recall, Sort: e.sort, Popular: e.popular, History: e.history, Claims: e.claims, Served: e.served}, zap.New(e.core), e.reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// calls is every call any port got.
func (e *env) calls() int {
	return e.cache.total() + e.recall.total() + e.popular.total() + e.sort.total() + e.history.total() + e.claims.total() + e.served.total()
}

// degradations reads reco_feed_degradations_total from the registry, by cause.
func (e *env) degradations(t *testing.T) map[string]float64 {
	t.Helper()
	return counterByLabel(t, e.reg, "reco_feed_degradations_total", "cause")
}

// counterByName is the value of an unlabelled counter in reg (absent: 0).
func counterByName(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func counterByLabel(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// degradedLogs checks every "feed degraded" line names r's user, channel and
// strategy and carries an error, and counts them by cause.
func (e *env) degradedLogs(t *testing.T, r feed.Request) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, entry := range e.logs.FilterMessage("feed degraded").All() {
		f := entry.ContextMap()
		if entry.Level != zap.WarnLevel {
			t.Errorf("feed degraded logged at %v, want warn", entry.Level)
		}
		if f["user"] != r.User || f["channel"] != r.Channel || f["strategy"] != r.Strategy.Name {
			t.Errorf("feed degraded fields user=%v channel=%v strategy=%v, want %q %d %q", f["user"], f["channel"], f["strategy"], r.User, r.Channel, r.Strategy.Name)
		}
		if _, ok := f["error"]; !ok {
			t.Errorf("feed degraded (cause %v) carries no error field", f["cause"])
		}
		cause, _ := f["cause"].(string)
		out[cause]++
	}
	return out
}

// fmtIDs renders a logged zap.Int64s field (or a slice) for comparison.
func fmtIDs(v any) string {
	s, _ := v.([]any)
	parts := make([]string, len(s))
	for i, x := range s {
		if id, ok := x.(int64); ok {
			parts[i] = strconv.FormatInt(id, 10)
		} else {
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func fmtInt64s(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// candidates are ids offered by source, in order.
func candidates(source feed.Source, ids ...int64) []feed.Candidate {
	out := make([]feed.Candidate, len(ids))
	for i, id := range ids {
		out[i] = feed.Candidate{ID: id, Source: source}
	}
	return out
}

func strategy() feed.Strategy {
	return feed.Strategy{
		Name:   "Algo-1",
		Recall: []feed.Source{feed.SourceALS, feed.SourceContent, feed.SourceOnline, feed.SourceNew, feed.SourceHot},
		Sort:   200,
	}
}

// refreshOf is a request of reader u1 for n ids of channel at ts.
func refreshOf(channel int32, n int, ts int64) feed.Request {
	return feed.Request{User: "u1", Channel: channel, N: n, Timestamp: ts, Strategy: strategy()}
}

// testCtx is a context that ends with the test or after a generous bound, so a
// hanging fake cannot hang the suite.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sameMap reports whether two counts are equal, treating absent as 0.
func sameMap(a, b map[string]float64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
