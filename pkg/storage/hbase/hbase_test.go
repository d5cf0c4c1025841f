package hbase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase/internal/thrift2"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout/layouttest"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

func gateway(tb testing.TB) string { return storagetest.Server(tb, storagetest.EnvHBase) }

// testConfig is a complete Config for addr whose calls time out after timeout.
func testConfig(addr string, timeout time.Duration) Config {
	return Config{ThriftAddr: addr, PoolSize: 16, Timeout: timeout, DialTimeout: time.Second, IdleTimeout: 30 * time.Second}
}

// openCells connects to the test gateway and bootstraps the tables: the
// engine, below the domain's layout.
func openCells(tb testing.TB) *tables {
	tb.Helper()
	addr := gateway(tb)
	tt, cleanup, err := open(testConfig(addr, 10*time.Second), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cleanup() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := tt.Bootstrap(ctx); err != nil {
		tb.Fatalf("Bootstrap against %s (%s): %v", addr, storagetest.EnvHBase, err)
	}
	return tt
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func unique(name string) string {
	return fmt.Sprintf("hbase-test-%s-%d", name, time.Now().UnixNano())
}

func TestTablesContract(t *testing.T) {
	storagetest.Tables(t, layout.NewTables(openCells(t)))
}

// Bootstrap creates every family with the VERSIONS and TTL of DESIGN.md §3, and
// brings a family someone changed back in line.
func TestBootstrapSchema(t *testing.T) {
	tb := openCells(t)
	ctx := ctxT(t)
	describe := func(table string) map[string]*thrift2.TColumnFamilyDescriptor {
		t.Helper()
		var desc *thrift2.TTableDescriptor
		err := tb.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
			desc, err = c.GetTableDescriptor(ctx, &thrift2.TTableName{Qualifier: []byte(table)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*thrift2.TColumnFamilyDescriptor{}
		for _, cf := range desc.GetColumns() {
			out[string(cf.Name)] = cf
		}
		return out
	}
	check := func() {
		t.Helper()
		for _, spec := range layout.Schema {
			have := describe(spec.Name)
			for _, f := range spec.Families {
				cf, ok := have[f.Name]
				if !ok {
					t.Errorf("%s: family %s missing", spec.Name, f.Name)
					continue
				}
				if got := cf.GetMaxVersions(); got != f.MaxVersions {
					t.Errorf("%s:%s VERSIONS = %d, want %d", spec.Name, f.Name, got, f.MaxVersions)
				}
				wantTTL := int32(math.MaxInt32)
				if f.TTL > 0 {
					wantTTL = int32(f.TTL / time.Second)
				}
				if got := cf.GetTimeToLive(); got != wantTTL {
					t.Errorf("%s:%s TTL = %d, want %d", spec.Name, f.Name, got, wantTTL)
				}
			}
		}
	}
	check()
	if want := int32(7776000); describe(layout.TableHistoryRecommend)["channel"].GetTimeToLive() != want {
		t.Errorf("history_recommend TTL is not 90 days (%d s)", want)
	}

	// Someone lowers VERSIONS on history_recall: the next Bootstrap restores it.
	cf := modifiedFamily(describe(layout.TableHistoryRecall)["channel"], layout.Family{Name: "channel", MaxVersions: 3, TTL: 90 * 24 * time.Hour})
	err := tb.ddl(ctx, func(ctx context.Context, c *thrift2.THBaseServiceClient) error {
		return c.ModifyColumnFamily(ctx, &thrift2.TTableName{Qualifier: []byte(layout.TableHistoryRecall)}, cf)
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 { // two at once, as two services starting together would
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tb.Bootstrap(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Bootstrap: %v", err)
		}
	}
	check()

	// Round trips through the gateway leave the descriptor's attributes intact
	// (see modifiedFamily): no key grows.
	for name, v := range describe(layout.TableHistoryRecall)["channel"].Attributes {
		if len(name) > 64 || len(v) > 64 {
			t.Errorf("history_recall:channel attribute of %d bytes (value %d bytes): the descriptor was corrupted", len(name), len(v))
		}
	}
}

// The original ran eval() on these bytes; here they are data, and a malformed
// value affects only itself: whichever domain port reads it skips it, counts it
// and logs it once, and serves the rest. Raw bytes go in through PutCells,
// which writes values as given.
func TestMalformedCellsAffectOnlyThemselves(t *testing.T) {
	c := openCells(t)
	r := layouttest.NewReports(t)
	c.bad = r.Bad
	layouttest.MalformedCells(t, ctxT(t), c, r, unique("malformed"), time.Now().UnixNano())
}

// A bounded read that skips malformed versions reads further, batch by batch,
// until it has as many valid ones as asked for.
func TestBoundedReadMakesUpForMalformedVersions(t *testing.T) {
	c := openCells(t)
	r := layouttest.NewReports(t)
	c.bad = r.Bad
	ctx := ctxT(t)
	cell := layout.HistoryCell(unique("refill"), 1)
	now := time.Now().UnixMilli()
	var cells []layout.CellValue
	for i := range int64(8) { // newest first: 4 malformed, then 4 valid
		v := []byte("[0]")
		if i >= 4 {
			v = []byte(fmt.Sprintf("[%d]", i))
		}
		cells = append(cells, layout.CellValue{Cell: cell, Timestamp: now - i, Value: v})
	}
	if err := c.PutCells(ctx, cells); err != nil {
		t.Fatal(err)
	}
	got, err := c.Versions(ctx, cell.Table, cell.Row, []string{cell.Column}, layout.MaxTimestamp, 3)
	if err != nil {
		t.Fatal(err)
	}
	var ts []int64
	for _, v := range got[cell.Column] {
		ts = append(ts, now-v.Timestamp)
	}
	if !slices.Equal(ts, []int64{4, 5, 6}) {
		t.Errorf("Versions(limit 3) under 4 malformed versions = now-%v, want now-[4 5 6]", ts)
	}
	r.Check(t, map[string]float64{layout.TableHistoryRecommend: 4})
}

// A queue cell holding an empty value (not even "[]"), which check-and-put
// cannot match, is overwritten all the same.
func TestEmptyQueueValueIsOverwritten(t *testing.T) {
	c := openCells(t)
	ctx := ctxT(t)
	cell := layout.WaitCell(unique("empty"), 1)
	if err := c.PutCells(ctx, []layout.CellValue{{Cell: cell, Value: []byte{}}}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Take(ctx, cell, 3); err != nil || len(got) != 0 {
		t.Errorf("Take = %v, %v; want nothing", got, err)
	}
	if err := c.Push(ctx, cell, []int64{4}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Take(ctx, cell, 3); err != nil || !slices.Equal(got, []int64{4}) {
		t.Errorf("Take after Push = %v, %v; want [4]", got, err)
	}
}

// Versions honours every combination of bound and limit, beyond the ones the
// domain's readers use (History.Page: a bound and 2; Newest: 1; the rest: all).
func TestVersionsBounds(t *testing.T) {
	layouttest.VersionsBounds(t, ctxT(t), openCells(t), unique("bounds"))
}

// An emptied queue is "[]", not a delete marker, so a Push right after a Take
// that emptied it is never hidden.
func TestPushAfterEmptyingTake(t *testing.T) {
	tb := openCells(t)
	ctx := ctxT(t)
	c := layout.WaitCell(unique("requeue"), 1)
	for i := int64(1); i <= 50; i++ {
		if err := tb.Push(ctx, c, []int64{i}); err != nil {
			t.Fatal(err)
		}
		if got, err := tb.Take(ctx, c, 5); err != nil || !slices.Equal(got, []int64{i}) {
			t.Fatalf("round %d: Take = %v, %v; want [%d]", i, got, err, i)
		}
	}
}

// Appends at a timestamp whose sequence cell exists but whose version was
// deleted start a new version rather than failing their check-and-put forever.
func TestAppendAfterDelete(t *testing.T) {
	tb := openCells(t)
	ctx := ctxT(t)
	c := layout.HistoryCell(unique("redo"), 1)
	now := time.Now().UnixMilli()
	if err := tb.Append(ctx, c, now, []int64{1}); err != nil {
		t.Fatal(err)
	}
	if err := tb.DeleteThrough(ctx, c, now); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(ctx, c, now+1, []int64{2}); err != nil {
		t.Fatal(err)
	}
	got, err := tb.Versions(ctx, c.Table, c.Row, []string{c.Column}, layout.MaxTimestamp, 0)
	if err != nil || len(got[c.Column]) != 1 || !slices.Equal(got[c.Column][0].IDs, []int64{2}) {
		t.Errorf("Versions = %v, %v; want one version [2]", got, err)
	}
	// Appending nothing new to an existing version writes nothing.
	if err := tb.Append(ctx, c, now+1, []int64{2}); err != nil {
		t.Fatal(err)
	}
}

func TestBatchesSplitUnderTheFrameLimit(t *testing.T) {
	tb := layout.NewTables(openCells(t))
	ctx := ctxT(t)
	// 1500 vectors of 111 floats: about 3.5 MiB of JSON, more than one frame.
	base := time.Now().UnixNano() % (1 << 50)
	vecs := map[int64][]float64{}
	var ids []int64
	var records []storage.Record
	for i := range int64(1500) {
		v := make([]float64, 111)
		for j := range v {
			v[j] = float64(i) + float64(j)/997
		}
		vecs[base+i] = v
		ids = append(ids, base+i)
		records = append(records, storage.ArticleVector{Article: base + i, Vector: v})
	}
	if err := tb.Load(ctx, records); err != nil {
		t.Fatal(err)
	}
	got, err := tb.ArticleVectors(ctx, append(ids, ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(vecs) {
		t.Fatalf("ArticleVectors = %d vectors, want %d", len(got), len(vecs))
	}
	for id, v := range vecs {
		if !slices.Equal(got[id], v) {
			t.Fatalf("vector %d changed on the way", id)
		}
	}
}

// --- without a server ----------------------------------------------------------

func TestRefusesWhatHBaseWould(t *testing.T) {
	// Nothing listens here: every case must fail before dialling.
	tt, cleanup, err := open(testConfig("127.0.0.1:1", time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	tests := []struct {
		name string
		cell layout.Cell
		want error
	}{
		{"unknown table", layout.Cell{Table: "wait_recommmend", Row: "reco:u", Column: "channel:1"}, ErrUnknownFamily},
		{"unknown family", layout.Cell{Table: layout.TableHistoryRecommend, Row: "reco:his:u", Column: "chanel:1"}, ErrUnknownFamily},
		{"the sequence family", layout.Cell{Table: layout.TableHistoryRecommend, Row: "reco:his:u", Column: layout.FamilySeq + ":x"}, ErrUnknownFamily},
		{"empty row", layout.Cell{Table: layout.TableHistoryRecommend, Column: "channel:1"}, ErrInvalidKey},
		{"huge row", layout.Cell{Table: layout.TableHistoryRecommend, Row: strings.Repeat("u", 40000), Column: "channel:1"}, ErrInvalidKey},
		{"no family", layout.Cell{Table: layout.TableHistoryRecommend, Row: "reco:his:u", Column: ":1"}, ErrInvalidKey},
	}
	for _, tt2 := range tests {
		t.Run(tt2.name, func(t *testing.T) {
			if err := tt.Append(ctx, tt2.cell, 1, []int64{1}); !errors.Is(err, tt2.want) {
				t.Errorf("Append: err = %v, want %v", err, tt2.want)
			}
			if _, err := tt.Versions(ctx, tt2.cell.Table, tt2.cell.Row, []string{tt2.cell.Column}, 1, 0); !errors.Is(err, tt2.want) {
				t.Errorf("Versions: err = %v, want %v", err, tt2.want)
			}
			if err := tt.PutCells(ctx, []layout.CellValue{{Cell: tt2.cell, Value: []byte("[]")}}); !errors.Is(err, tt2.want) {
				t.Errorf("PutCells: err = %v, want %v", err, tt2.want)
			}
		})
	}
}

// silentGateway accepts connections and never answers.
func silentGateway(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	// Teardown: the test is over and nothing reads these.
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// A gateway that accepts and never answers: a call ends at the caller's
// deadline, or at Config.Timeout when the caller has none, and a cancelled
// context interrupts a call in flight.
func TestCallsHonourTheDeadline(t *testing.T) {
	addr := silentGateway(t)
	tt, cleanup, err := Open(testConfig(addr, time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = tt.UserWeights(ctx, "u", []int32{1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("UserWeights with a 100ms deadline: err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("UserWeights with a 100ms deadline returned after %v", took)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	err = tt.Record(ctx, "u", 1, 1, []int64{1})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Record cancelled mid-call: err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Record cancelled after 100ms returned after %v", took)
	}

	short, cleanup2, err := Open(testConfig(addr, 100*time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup2(); err != nil {
			t.Error(err)
		}
	}()
	start = time.Now()
	_, err = short.Take(context.Background(), "u", 1, 1)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("Take without a deadline, Timeout 100ms: err = %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Take with Timeout 100ms returned after %v", took)
	}
}

// The pool never runs more calls than PoolSize at once: the others wait for a
// connection, and give up at their deadline.
func TestPoolBoundsConcurrentCalls(t *testing.T) {
	addr := silentGateway(t)
	cfg := testConfig(addr, time.Minute)
	cfg.PoolSize = 2
	tt, cleanup, err := open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	p := tt.pool
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = tt.UserWeightsIn(ctx, "u", []int32{1})
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if inUse := len(p.slots); inUse != 2 {
		t.Errorf("%d calls in flight, want 2 (PoolSize)", inUse)
	}
	wg.Wait()
	if inUse := len(p.slots); inUse != 0 {
		t.Errorf("%d slots still taken after every call returned", inUse)
	}
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d timed-out connections kept for reuse, want 0", idle)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := tt.UserWeightsIn(context.Background(), "u", []int32{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("call after cleanup: err = %v, want ErrClosed", err)
	}
}

func TestConfigValidate(t *testing.T) {
	with := func(mutate func(*Config)) Config {
		c := testConfig("hbase:9090", time.Second)
		mutate(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"full", testConfig("hbase:9090", time.Second), ""},
		{"no address", with(func(c *Config) { c.ThriftAddr = "" }), "thrift_addr is required"},
		{"no port", with(func(c *Config) { c.ThriftAddr = "hbase" }), "not host:port"},
		{"no pool", with(func(c *Config) { c.PoolSize = 0 }), "pool_size must be positive"},
		{"negative pool", with(func(c *Config) { c.PoolSize = -1 }), "pool_size must be positive"},
		{"no timeout", with(func(c *Config) { c.Timeout = 0 }), "timeout must be positive"},
		{"negative timeout", with(func(c *Config) { c.Timeout = -time.Second }), "timeout must be positive"},
		{"no dial timeout", with(func(c *Config) { c.DialTimeout = 0 }), "dial_timeout must be positive"},
		{"no idle timeout", with(func(c *Config) { c.IdleTimeout = 0 }), "idle_timeout must be positive"},
		{"only an address", Config{ThriftAddr: "127.0.0.1:9090"}, "pool_size must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
	if _, _, err := Open(Config{}, nil); err == nil || !strings.Contains(err.Error(), "invalid hbase config") {
		t.Errorf("Open(Config{}) = %v, want an invalid config error", err)
	}
}

// proxy forwards TCP connections to target and can cut them all, as a gateway
// restart or an idle timeout on the gateway's side would.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close() // no upstream for it: drop the client
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			// When one side ends, close the other; a side already gone is as good.
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.cut() }) // teardown: the test is over
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// cut closes every connection made so far.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for _, c := range p.conns {
		_ = c.Close() // cutting is the point: a connection already gone is as good
	}
	p.conns = nil
	return n
}

// Pooled connections the gateway has dropped (restart, idle timeout) are
// replaced without failing the call that finds them dead.
func TestStaleConnectionsAreReplaced(t *testing.T) {
	addr := gateway(t)
	p := newProxy(t, addr)
	tt, cleanup, err := Open(testConfig(p.addr(), 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	ctx := ctxT(t)
	user := unique("stale")
	if err := tt.Load(ctx, []storage.Record{storage.UserWeights{User: user, Channel: 1, Weights: []float64{0.5}}}); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if n := p.cut(); n == 0 {
			t.Fatalf("round %d: no pooled connection to cut", round)
		}
		time.Sleep(20 * time.Millisecond) // let the close reach the pooled socket
		w, err := tt.UserWeights(ctx, user, []int32{1})
		if err != nil || !slices.Equal(w[1], []float64{0.5}) {
			t.Fatalf("round %d: UserWeights on a cut pool = %v, %v; want [0.5]", round, w, err)
		}
	}
}
