// Package logtest is the contract every eventlog backend passes: per-key order,
// nothing lost or doubled under concurrent appends, commits that hold across
// consumers, redelivery of what was not committed, independent groups, prompt
// wake-up and Appends that honour their context.
package logtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
)

// Timing of the suite. Waits are generous (a consumer group on a real cluster
// takes a few seconds to form); only the wake-up test measures latency.
const (
	deliverTimeout = 60 * time.Second
	// settle is how long a consumer must then stay quiet for "nothing more".
	settle = 500 * time.Millisecond
	// WakeLatency is the most the median Append-to-delivery time may be.
	WakeLatency = 100 * time.Millisecond
)

// Run runs the contract suite. newLog returns the log a subtest uses; it may be
// shared, as every subtest picks topic and group names of its own.
func Run(t *testing.T, newLog func(t *testing.T) eventlog.Log) {
	t.Run("OrderPerKey", func(t *testing.T) { testOrderPerKey(t, newLog(t)) })
	t.Run("ConcurrentAppenders", func(t *testing.T) { testConcurrentAppenders(t, newLog(t)) })
	t.Run("CommittedNotRedelivered", func(t *testing.T) { testCommittedNotRedelivered(t, newLog(t)) })
	t.Run("HandlerErrorRetries", func(t *testing.T) { testHandlerErrorRetries(t, newLog(t)) })
	t.Run("CancelledMidBatchRedelivered", func(t *testing.T) { testCancelledMidBatch(t, newLog(t)) })
	t.Run("FailingConsumerLeavesBatch", func(t *testing.T) { testFailingConsumerLeavesBatch(t, newLog(t)) })
	t.Run("TwoGroups", func(t *testing.T) { testTwoGroups(t, newLog(t)) })
	t.Run("MarksIdentifyEntries", func(t *testing.T) { testMarks(t, newLog(t)) })
	t.Run("WakesPromptly", func(t *testing.T) { testWakesPromptly(t, newLog(t)) })
	t.Run("AppendHonoursContext", func(t *testing.T) { testAppendContext(t, newLog(t)) })
	t.Run("RejectsBadInput", func(t *testing.T) { testBadInput(t, newLog(t)) })
}

var seq atomic.Int64

// Name returns a topic or group name unique to this run of t: a Kafka cluster
// keeps topics and group offsets between runs.
func Name(t testing.TB, what string) string {
	return fmt.Sprintf("%s-%s-%d-%d", what, testName(t, 120), time.Now().UnixNano(), seq.Add(1))
}

// Namespace returns a storage.log.namespace unique to t in this run of the
// tests, the same on every call: the processes of one test share it, and no
// two tests (nor two runs) share a topic or consumer group on one cluster.
func Namespace(t testing.TB) string {
	return fmt.Sprintf("%s-%d.", testName(t, 60), runStart)
}

var runStart = time.Now().UnixNano()

// testName is t's name in the characters a topic name takes, its last max.
func testName(t testing.TB, max int) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, t.Name())
	if len(s) > max {
		s = s[len(s)-max:]
	}
	return s
}

// Consumer runs one Consume in the background and records what its handler
// accepted.
type Consumer struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex
	entries []eventlog.Entry // of the batches handled with nil, in order
	batches int
	changed chan struct{}
}

// Start starts Consume(topic, group). handle, if not nil, decides each batch
// (its error is returned to the log); the batches it accepts are recorded.
func Start(t testing.TB, log eventlog.Log, topic, group string, handle func(ctx context.Context, batch []eventlog.Entry) error) *Consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{t: t, cancel: cancel, done: make(chan error, 1), changed: make(chan struct{})}
	go func() {
		c.done <- log.Consume(ctx, topic, group, func(ctx context.Context, batch []eventlog.Entry) error {
			if len(batch) == 0 {
				t.Errorf("Consume delivered an empty batch")
			}
			if handle != nil {
				if err := handle(ctx, batch); err != nil {
					return err
				}
			}
			c.mu.Lock()
			for _, e := range batch {
				e.Value = slices.Clone(e.Value)
				c.entries = append(c.entries, e)
			}
			c.batches++
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { c.cancel() })
	return c
}

// Entries returns what was handled so far.
func (c *Consumer) Entries() []eventlog.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.entries)
}

// WaitFor waits until n entries were handled and returns them; fewer within
// the timeout fail the test.
func (c *Consumer) WaitFor(n int, timeout time.Duration) []eventlog.Entry {
	c.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.entries), c.changed
		c.mu.Unlock()
		if got >= n {
			return c.Entries()
		}
		select {
		case <-changed:
		case err := <-c.done:
			c.done <- err
			c.t.Fatalf("Consume returned early (%v) after %d of %d entries", err, got, n)
		case <-deadline.C:
			c.t.Fatalf("only %d of %d entries delivered within %s", got, n, timeout)
		}
	}
}

// Stop cancels the consumer and waits for Consume, which must return nil.
func (c *Consumer) Stop() {
	c.t.Helper()
	c.cancel()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			c.t.Errorf("Consume returned %v after its context ended, want nil", err)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatal("Consume did not return within 30s of its context ending")
	}
}

// Done receives Consume's result once it has returned.
func (c *Consumer) Done() <-chan error { return c.done }

func value(key string, i int) []byte { return []byte(key + ":" + strconv.Itoa(i)) }

// checkPerKey checks that got holds exactly want's entries, each once, and in
// want's order per key.
func checkPerKey(t testing.TB, got, want []eventlog.Entry) {
	t.Helper()
	perKey := func(es []eventlog.Entry) map[string][]string {
		m := map[string][]string{}
		for _, e := range es {
			m[e.Key] = append(m[e.Key], string(e.Value))
		}
		return m
	}
	g, w := perKey(got), perKey(want)
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d", len(got), len(want))
	}
	bad := 0
	for k, wv := range w {
		if !slices.Equal(g[k], wv) && bad < 5 {
			bad++
			t.Errorf("key %q: got %d entries %.200v, want %d %.200v", k, len(g[k]), g[k], len(wv), wv)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			t.Errorf("key %q was never appended", k)
		}
	}
}

func appendOK(t testing.TB, log eventlog.Log, topic string, es ...eventlog.Entry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := log.Append(ctx, topic, es...); err != nil {
		t.Fatalf("Append(%s, %d entries): %v", topic, len(es), err)
	}
}

// appendN appends n entries of key k, one Append each, and returns them.
func appendN(t testing.TB, log eventlog.Log, topic, key string, from, n int) []eventlog.Entry {
	t.Helper()
	var es []eventlog.Entry
	for i := from; i < from+n; i++ {
		e := eventlog.Entry{Key: key, Value: value(key, i)}
		appendOK(t, log, topic, e)
		es = append(es, e)
	}
	return es
}

func testOrderPerKey(t *testing.T, log eventlog.Log) {
	topic := Name(t, "t")
	const keys, per = 10, 30
	var want []eventlog.Entry
	next := make([]int, keys)
	// Appends of 1 to 5 entries, keys interleaved within and across them.
	for round := 0; len(want) < keys*per; round++ {
		var es []eventlog.Entry
		for j := 0; j < 1+round%5 && len(want)+len(es) < keys*per; j++ {
			k := (round*7 + j*3) % keys
			for next[k] >= per {
				k = (k + 1) % keys
			}
			key := "user-" + strconv.Itoa(k)
			es = append(es, eventlog.Entry{Key: key, Value: value(key, next[k])})
			next[k]++
		}
		appendOK(t, log, topic, es...)
		want = append(want, es...)
	}
	c := Start(t, log, topic, Name(t, "g"), nil)
	c.WaitFor(len(want), deliverTimeout)
	time.Sleep(settle)
	c.Stop()
	checkPerKey(t, c.Entries(), want)
	for _, e := range c.Entries() {
		if e.Topic != topic {
			t.Fatalf("consumed entry names topic %q, want %q", e.Topic, topic)
		}
	}
}

func testConcurrentAppenders(t *testing.T, log eventlog.Log) {
	topic := Name(t, "t")
	const writers, per = 50, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			key := "writer-" + strconv.Itoa(w)
			for i := range per {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := log.Append(ctx, topic, eventlog.Entry{Key: key, Value: value(key, i)})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d appends from %d goroutines in %s", writers*per, writers, time.Since(start).Round(time.Millisecond))
	var want []eventlog.Entry
	for w := range writers {
		key := "writer-" + strconv.Itoa(w)
		for i := range per {
			want = append(want, eventlog.Entry{Key: key, Value: value(key, i)})
		}
	}
	c := Start(t, log, topic, Name(t, "g"), nil)
	c.WaitFor(len(want), deliverTimeout)
	time.Sleep(settle)
	c.Stop()
	checkPerKey(t, c.Entries(), want)
}

func testCommittedNotRedelivered(t *testing.T, log eventlog.Log) {
	topic, group := Name(t, "t"), Name(t, "g")
	first := appendN(t, log, topic, "k", 0, 10)
	a := Start(t, log, topic, group, nil)
	a.WaitFor(len(first), deliverTimeout)
	a.Stop()
	checkPerKey(t, a.Entries(), first)

	second := appendN(t, log, topic, "k", 10, 5)
	b := Start(t, log, topic, group, nil)
	b.WaitFor(len(second), deliverTimeout)
	time.Sleep(settle)
	b.Stop()
	// Exactly the new ones: the first consumer's batches were committed.
	checkPerKey(t, b.Entries(), second)
}

func testHandlerErrorRetries(t *testing.T, log eventlog.Log) {
	topic, group := Name(t, "t"), Name(t, "g")
	want := appendN(t, log, topic, "k", 0, 5)
	var (
		mu     sync.Mutex
		failed []eventlog.Entry
		calls  int
	)
	c := Start(t, log, topic, group, func(_ context.Context, batch []eventlog.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			failed = slices.Clone(batch)
			return errors.New("the store is down")
		}
		return nil
	})
	got := c.WaitFor(len(want), deliverTimeout)
	c.Stop()
	checkPerKey(t, got, want)
	mu.Lock()
	defer mu.Unlock()
	if len(failed) == 0 || got[0].Key != failed[0].Key || string(got[0].Value) != string(failed[0].Value) {
		t.Errorf("after a handler error the batch starting %v must come again first; got %v first", failed[:min(1, len(failed))], got[0])
	}

	// And what the retry handled was committed.
	again := Start(t, log, topic, group, nil)
	time.Sleep(settle + time.Second)
	again.Stop()
	if n := len(again.Entries()); n != 0 {
		t.Errorf("a new consumer of the group got %d entries already handled and committed", n)
	}
}

func testCancelledMidBatch(t *testing.T, log eventlog.Log) {
	topic, group := Name(t, "t"), Name(t, "g")
	want := appendN(t, log, topic, "k", 0, 5)
	var a *Consumer
	entered := make(chan struct{})
	var once sync.Once
	a = Start(t, log, topic, group, func(ctx context.Context, batch []eventlog.Entry) error {
		// The process is told to stop while it works on the batch.
		once.Do(func() { close(entered) })
		<-ctx.Done()
		return ctx.Err()
	})
	select {
	case <-entered:
	case <-time.After(deliverTimeout):
		t.Fatal("no batch delivered")
	}
	a.Stop()
	if n := len(a.Entries()); n != 0 {
		t.Fatalf("the cancelled consumer handled %d entries", n)
	}
	b := Start(t, log, topic, group, nil)
	b.WaitFor(len(want), deliverTimeout)
	time.Sleep(settle)
	b.Stop()
	checkPerKey(t, b.Entries(), want)
}

// testMarks checks what idempotent handlers rely on: within a partition
// offsets grow with append order, no two entries share a (partition, offset),
// and an entry delivered again carries the same one.
func testMarks(t *testing.T, log eventlog.Log) {
	topic := Name(t, "t")
	var want []eventlog.Entry
	for _, k := range []string{"a", "b", "c"} {
		want = append(want, appendN(t, log, topic, k, 0, 4)...)
	}
	type mark struct {
		p int32
		o int64
	}
	read := func(group string) map[string]mark {
		c := Start(t, log, topic, group, nil)
		got := c.WaitFor(len(want), deliverTimeout)
		c.Stop()
		marks := map[string]mark{}
		last := map[int32]int64{}
		for _, e := range got {
			m := mark{e.Partition, e.Offset}
			if prev, ok := last[m.p]; ok && m.o <= prev {
				t.Errorf("entry %s: offset %d of partition %d does not follow %d", e.Value, m.o, m.p, prev)
			}
			last[m.p] = m.o
			marks[string(e.Value)] = m
		}
		return marks
	}
	first, again := read(Name(t, "g1")), read(Name(t, "g2"))
	seen := map[mark]string{}
	for v, m := range first {
		if other, dup := seen[m]; dup {
			t.Errorf("entries %s and %s share partition %d offset %d", v, other, m.p, m.o)
		}
		seen[m] = v
		if again[v] != m {
			t.Errorf("entry %s: delivered at %v, then at %v", v, m, again[v])
		}
	}
}

func testFailingConsumerLeavesBatch(t *testing.T, log eventlog.Log) {
	topic, group := Name(t, "t"), Name(t, "g")
	want := appendN(t, log, topic, "k", 0, 5)
	var calls atomic.Int64
	a := Start(t, log, topic, group, func(context.Context, []eventlog.Entry) error {
		calls.Add(1)
		return errors.New("always failing")
	})
	deadline := time.Now().Add(deliverTimeout)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the handler was called %d times; a failed batch must be retried", calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Stop()
	b := Start(t, log, topic, group, nil)
	b.WaitFor(len(want), deliverTimeout)
	time.Sleep(settle)
	b.Stop()
	checkPerKey(t, b.Entries(), want)
}

func testTwoGroups(t *testing.T, log eventlog.Log) {
	topic := Name(t, "t")
	var want []eventlog.Entry
	for k := range 4 {
		want = append(want, appendN(t, log, topic, "user-"+strconv.Itoa(k), 0, 5)...)
	}
	g1 := Start(t, log, topic, Name(t, "g1"), nil)
	g2 := Start(t, log, topic, Name(t, "g2"), nil)
	g1.WaitFor(len(want), deliverTimeout)
	g2.WaitFor(len(want), deliverTimeout)
	time.Sleep(settle)
	g1.Stop()
	g2.Stop()
	checkPerKey(t, g1.Entries(), want)
	checkPerKey(t, g2.Entries(), want)
}

func testWakesPromptly(t *testing.T, log eventlog.Log) {
	topic := Name(t, "t")
	c := Start(t, log, topic, Name(t, "g"), nil)
	// The first entry waits for the consumer to be running (a group join).
	warm := time.Now()
	appendOK(t, log, topic, eventlog.Entry{Key: "k", Value: value("k", 0)})
	c.WaitFor(1, deliverTimeout)
	t.Logf("first delivery (consumer start-up) after %s", time.Since(warm).Round(time.Millisecond))
	const rounds = 7
	lat := make([]time.Duration, 0, rounds)
	for i := 1; i <= rounds; i++ {
		time.Sleep(50 * time.Millisecond) // the consumer is idle, waiting
		start := time.Now()
		appendOK(t, log, topic, eventlog.Entry{Key: "k", Value: value("k", i)})
		c.WaitFor(i+1, 10*time.Second)
		lat = append(lat, time.Since(start))
	}
	c.Stop()
	slices.Sort(lat)
	t.Logf("Append to delivery: median %s, max %s", lat[rounds/2], lat[rounds-1])
	if lat[rounds/2] > WakeLatency {
		t.Errorf("median Append-to-delivery latency %s, want under %s (all: %v)", lat[rounds/2], WakeLatency, lat)
	}
}

func testAppendContext(t *testing.T, log eventlog.Log) {
	topic := Name(t, "t")
	e := eventlog.Entry{Key: "k", Value: []byte("v")}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := log.Append(ctx, topic, e); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := log.Append(ctx, topic, e); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append with an expired deadline = %v, want context.DeadlineExceeded", err)
	}
	// A context that ends while Append waits returns promptly; the entry may
	// or may not be stored.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	start := time.Now()
	err := log.Append(ctx, topic, e)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append with a 1ms deadline = %v, want nil or context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Append with a 1ms deadline took %s", d)
	}
	// A consumer still reads the topic normally.
	appendOK(t, log, topic, eventlog.Entry{Key: "k", Value: []byte("last")})
	c := Start(t, log, topic, Name(t, "g"), nil)
	deadline := time.Now().Add(deliverTimeout)
	for {
		es := c.Entries()
		if len(es) > 0 && string(es[len(es)-1].Value) == "last" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the entry appended last never came: %v", es)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Stop()
}

func testBadInput(t *testing.T, log eventlog.Log) {
	ctx := context.Background()
	topic := Name(t, "t")
	if err := log.Append(ctx, topic); err != nil {
		t.Errorf("Append of no entries = %v, want nil", err)
	}
	for _, bad := range []string{"", "a/b", "..", "sp ace"} {
		if err := log.Append(ctx, bad, eventlog.Entry{Key: "k"}); err == nil {
			t.Errorf("Append to topic %q succeeded, want an error", bad)
		}
		if err := log.Consume(ctx, topic, bad, func(context.Context, []eventlog.Entry) error { return nil }); err == nil {
			t.Errorf("Consume as group %q returned nil, want an error", bad)
		}
	}
	big := eventlog.Entry{Key: "k", Value: make([]byte, eventlog.MaxEntryBytes)}
	if err := log.Append(ctx, topic, big); !errors.Is(err, eventlog.ErrTooLarge) {
		t.Errorf("Append of %d bytes = %v, want ErrTooLarge", len(big.Value)+1, err)
	}
}
