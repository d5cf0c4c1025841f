package redisstore

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toutiao-reco/toutiao-reco/pkg/breaker"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout/layouttest"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

func server(tb testing.TB) string { return storagetest.Server(tb, storagetest.EnvRedis) }

// open connects to the test server and checks it answers. It returns the
// engine, below the domain's layout, and a client of its own for looking at
// keys directly.
func open(tb testing.TB) (*sortedSets, redis.UniversalClient) {
	tb.Helper()
	addr := server(tb)
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{addr}, ContextTimeoutEnabled: true})
	tb.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		tb.Fatalf("redis at %s (%s) does not answer: %v", addr, storagetest.EnvRedis, err)
	}
	return &sortedSets{rdb: client}, client
}

func uniqueKey(name string) string {
	return fmt.Sprintf("redisstore-test:%s:%d", name, time.Now().UnixNano())
}

func TestSetsContract(t *testing.T) {
	sets, cleanup, err := Open(Config{Addrs: []string{server(t)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	storagetest.Sets(t, sets)
}

// Delete removes every key given, in one pipelined round trip; absent ones are
// fine.
func TestDelete(t *testing.T) {
	sets, _ := open(t)
	ctx := context.Background()
	keys := []string{uniqueKey("del-a"), uniqueKey("del-b")}
	for _, k := range keys {
		if err := sets.Add(ctx, k, []storage.Scored{{ID: 1, Score: 1}}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := sets.Delete(ctx, append(keys, uniqueKey("absent"))...); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if got, err := sets.Top(ctx, k, 1); err != nil || len(got) != 0 {
			t.Errorf("Top(%s) after Delete = %v, %v; want nothing", k, got, err)
		}
	}
}

// The same expectations as the embedded engine's TestSortedSetOrderMatchesRedis:
// ties go to the lexicographically greater member, -0 is 0, infinities sort at
// the ends.
func TestOrder(t *testing.T) {
	sets, _ := open(t)
	ctx := context.Background()
	key := uniqueKey("order")
	t.Cleanup(func() { _ = sets.Delete(context.Background(), key) })
	in := []storage.Scored{
		{ID: 9, Score: 1}, {ID: 10, Score: 1}, {ID: 100, Score: 1},
		{ID: 1, Score: math.Inf(-1)}, {ID: 2, Score: -2.5}, {ID: 3, Score: math.Copysign(0, -1)},
		{ID: 4, Score: 0.25}, {ID: 5, Score: math.Inf(1)}, {ID: 70, Score: -2.5},
	}
	if err := sets.Add(ctx, key, in, time.Minute); err != nil {
		t.Fatal(err)
	}
	want := []storage.Scored{
		{ID: 5, Score: math.Inf(1)}, {ID: 9, Score: 1}, {ID: 100, Score: 1}, {ID: 10, Score: 1},
		{ID: 4, Score: 0.25}, {ID: 3, Score: 0}, {ID: 70, Score: -2.5}, {ID: 2, Score: -2.5},
		{ID: 1, Score: math.Inf(-1)},
	}
	if got, err := sets.Top(ctx, key, 20); err != nil || !slices.Equal(got, want) {
		t.Errorf("Top = %v, %v\nwant %v", got, err, want)
	}
	if err := sets.Add(ctx, key, []storage.Scored{{ID: 1, Score: 2}}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := sets.PopMax(ctx, key, 2); err != nil || !slices.Equal(got, []int64{5, 1}) {
		t.Errorf("PopMax(2) after re-scoring 1 = %v, %v; want [5 1]", got, err)
	}
}

func TestAddSetsExpiryAtomically(t *testing.T) {
	sets, client := open(t)
	ctx := context.Background()
	key := uniqueKey("ttl")
	t.Cleanup(func() { _ = sets.Delete(context.Background(), key) })
	if err := sets.Add(ctx, key, []storage.Scored{{ID: 1, Score: 1}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL after Add(ttl=1h) = %v, want about an hour", ttl)
	}
	// A ttl of 0 leaves the expiry alone, as ZADD does.
	if err := sets.Add(ctx, key, []storage.Scored{{ID: 2, Score: 2}}, 0); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, key).Val(); ttl <= 59*time.Minute {
		t.Errorf("PTTL after Add(ttl=0) = %v, want the hour kept", ttl)
	}
}

// A member that is not an article id affects only itself: the read that finds
// it drops it (ZREM), counts it and logs it once, and serves the rest.
func TestMalformedMembersAffectOnlyThemselves(t *testing.T) {
	sets, client := open(t)
	r := layouttest.NewReports(t)
	sets.bad = r.Bad
	ctx := context.Background()
	add := func(key, member string, score float64) {
		t.Helper()
		if err := client.ZAdd(ctx, key, redis.Z{Score: score, Member: member}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	members := func(key string) []string {
		t.Helper()
		m, err := client.ZRange(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// A channel of its own: the hot list's key has no user in it.
	channel := int32(1_000_000 + time.Now().UnixNano()%1_000_000_000)
	layouttest.MalformedMembers(t, ctx, sets, add, members, r, uniqueKey("bad"), channel)
}

// A server that accepts and never answers: the call must end at the caller's
// deadline, not at the client's 3s read timeout. Runs without a real Redis.
func TestCallsHonourTheDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c // held open, never answered
		}
	}()
	// Teardown: the test is over and nothing reads these.
	defer func() {
		_ = ln.Close()
		for c := range conns {
			_ = c.Close()
		}
	}()
	sets, cleanup, err := Open(Config{Addrs: []string{ln.Addr().String()}, ReadTimeout: time.Minute, WriteTimeout: time.Minute}, nil)
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
	_, err = sets.Pop(ctx, "u", 1, 1)
	if err == nil {
		t.Fatal("Pop against a silent server succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Pop with a 100ms deadline returned after %v (err %v)", took, err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"one server", Config{Addrs: []string{"127.0.0.1:6379"}, DB: 8}, ""},
		{"cluster", Config{Addrs: []string{"a:1", "b:1"}}, ""},
		{"no address", Config{}, "addrs"},
		{"negative db", Config{Addrs: []string{"a:1"}, DB: -1}, "db must be >= 0"},
		{"db on a cluster", Config{Addrs: []string{"a:1", "b:1"}, DB: 10}, "db must be 0 for a cluster"},
		{"negative timeout", Config{Addrs: []string{"a:1"}, ReadTimeout: -time.Second}, "read_timeout"},
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
}

// BenchmarkPopMax pops a refresh's worth (10) from a tier-1 cache of 100, the
// hot path of every refresh.
func BenchmarkPopMax(b *testing.B) {
	sets, _ := open(b)
	ctx := context.Background()
	key := uniqueKey("bench")
	b.Cleanup(func() { _ = sets.Delete(context.Background(), key) })
	fill := make([]storage.Scored, 100)
	for i := range fill {
		fill[i] = storage.Scored{ID: int64(i + 1), Score: float64(i)}
	}
	var lat storagetest.Latencies
	for i := 0; b.Loop(); i++ {
		if i%10 == 0 {
			b.StopTimer()
			if err := sets.Add(ctx, key, fill, time.Hour); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		start := time.Now()
		ids, err := sets.PopMax(ctx, key, 10)
		lat.Since(start)
		if err != nil || len(ids) != 10 {
			b.Fatalf("PopMax = %v, %v; want 10 ids", ids, err)
		}
	}
	lat.Report(b)
}

// A Redis that went away and came back (all connections dead, the first new
// ones refused) is used again within a few seconds: the breaker's probe must
// be able to open a connection, whose handshake goes through the hooks too.
// Before that was fixed, the breaker stayed open for good.
func TestRecoversWhenRedisComesBack(t *testing.T) {
	p := newCutProxy(t, server(t))
	sets, cleanup, err := Open(Config{Addrs: []string{p.addr}, PoolSize: 8, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cleanup() }()
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := sets.Top(ctx, storage.HotList, 1, 1)
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("call before the cut: %v", err)
	}
	p.cut()
	// Enough failed calls to open the breaker (in bursts, as under load: a
	// sequence of calls that each wait out their deadline is too slow to),
	// and a few probes that fail.
	var opened atomic.Bool
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if errors.Is(call(), breaker.ErrOpen) {
					opened.Store(true)
				}
			})
		}
		wg.Wait()
	}
	if !opened.Load() {
		t.Fatal("the breaker never opened while Redis was unreachable")
	}
	p.restore()
	start := time.Now()
	for {
		err := call()
		if err == nil {
			t.Logf("answering again %v after Redis came back", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("still failing 10s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cutProxy forwards a port to Redis until cut: then it closes every
// connection and refuses new ones, as a dead server does, until restored on
// the same port.
type cutProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// What go-redis logs of its own reaches the process's log as JSON-ready
// warnings, a repeated message once per logEvery, not a plain line on stderr
// per failed dial.
func TestGoRedisLogsThroughZapOncePerMessage(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	SetLogger(zap.New(core))
	defer SetLogger(zap.NewNop()) // the observer is this test's
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more: every dial is refused
	sets, cleanup, err := Open(Config{Addrs: []string{addr}, DialTimeout: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cleanup() }()
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, _ = sets.Top(ctx, storage.HotList, 1, 1)
		cancel()
	}
	entries := logs.All()
	if len(entries) == 0 {
		t.Fatal("go-redis logged nothing through zap while every dial was refused")
	}
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Message]++
		if seen[e.Message] > 1 {
			t.Errorf("message logged %d times within %v: %q", seen[e.Message], logEvery, e.Message)
		}
	}
}
