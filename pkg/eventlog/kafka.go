package eventlog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
)

// kafkaLog is the log on a Kafka cluster: one producer client for every
// Append (and the admin calls), one consumer-group client per Consume.
type kafkaLog struct {
	cfg  KafkaConfig
	tls  *certs.ClientTLS // nil: plaintext
	log  *zap.Logger
	prod *kgo.Client
	adm  *kadm.Client

	mu     sync.Mutex
	topics map[string]bool // known to exist
	closed bool
}

func openKafka(cfg KafkaConfig, log *zap.Logger) (*kafkaLog, error) {
	tlsClient, err := certs.NewClient(cfg.TLS, log)
	if err != nil {
		return nil, fmt.Errorf("eventlog: kafka tls: %w", err)
	}
	opts := append(clientOpts(cfg, log, tlsClient),
		// Idempotent (franz-go's default, spelled out): a retried produce is not
		// stored twice, and per-partition order survives retries.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Kafka's own key partitioning (murmur2, as the Java client does), so a
		// log shipper producing click-trace lines keyed by user id puts a
		// reader's lines in the same partition as ours.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(cfg.Linger),
		// A record that cannot be delivered (no broker) fails after this, so
		// nothing piles up behind a dead cluster; Append's own deadline is
		// usually shorter.
		kgo.RecordDeliveryTimeout(cfg.Timeout),
		kgo.ProduceRequestTimeout(cfg.Timeout),
	)
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: kafka client: %w", err)
	}
	return &kafkaLog{cfg: cfg, tls: tlsClient, log: log, prod: prod, adm: kadm.NewClient(prod), topics: map[string]bool{}}, nil
}

// clientOpts are the options of every client; with tls, each connection to a
// broker is TLS, its handshake made with the files as they are then (rather
// than kgo.DialTLSConfig's fixed CA, see pkg/certs).
func clientOpts(cfg KafkaConfig, log *zap.Logger, tls *certs.ClientTLS) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DialTimeout(cfg.DialTimeout),
		kgo.WithLogger(kgoLogger{log}),
		// Metadata may be refreshed once a second rather than every 5s when a
		// partition's leader moved or a topic is missing: a failover costs less
		// waiting.
		kgo.MetadataMinAge(time.Second),
	}
	if tls != nil {
		opts = append(opts, kgo.Dialer(tls.Dialer(&net.Dialer{Timeout: cfg.DialTimeout})))
	}
	return opts
}

// close waits (up to Timeout) for what the producer buffered, then closes it.
func (k *kafkaLog) close() error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.Timeout)
	defer cancel()
	err := k.prod.Flush(ctx)
	k.prod.Close()
	if err != nil {
		return fmt.Errorf("eventlog: flush kafka producer: %w", err)
	}
	return nil
}

// ensureTopic makes sure topic exists, once per process: it creates a missing
// one with Partitions partitions, then waits until the brokers' metadata shows
// it (a producer or consumer that asked too early would wait for its next
// metadata refresh). An existing topic is only looked up, so a client without
// the right to create topics can use the ones an operator made.
func (k *kafkaLog) ensureTopic(ctx context.Context, topic string) error {
	k.mu.Lock()
	closed, known := k.closed, k.topics[topic]
	k.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if known {
		return nil
	}
	ctx, cancel := k.bound(ctx)
	defer cancel()
	exists := func() bool {
		d, err := k.adm.ListTopics(ctx, topic)
		t, ok := d[topic]
		return err == nil && ok && t.Err == nil && len(t.Partitions) > 0
	}
	if !exists() {
		resp, err := k.adm.CreateTopic(ctx, int32(k.cfg.Partitions), int16(k.cfg.ReplicationFactor), nil, topic)
		switch {
		case err == nil:
			k.log.Info("eventlog: created kafka topic", zap.String("topic", topic),
				zap.Int("partitions", k.cfg.Partitions), zap.Int("replication_factor", k.cfg.ReplicationFactor))
		case errors.Is(err, kerr.TopicAlreadyExists): // created by someone else meanwhile
		default:
			if resp.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
			return fmt.Errorf("eventlog: create kafka topic %s: %w", topic, err)
		}
		for !exists() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("eventlog: kafka topic %s not visible in metadata: %w", topic, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	k.mu.Lock()
	k.topics[topic] = true
	k.mu.Unlock()
	return nil
}

// bound gives ctx the Timeout deadline unless it has an earlier one.
func (k *kafkaLog) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, k.cfg.Timeout)
}

// Append implements Log: it returns once every entry was acknowledged by all
// in-sync replicas, or with the first error, or when ctx ends.
func (k *kafkaLog) Append(ctx context.Context, topic string, entries ...Entry) error {
	if ok, err := checkAppend(ctx, topic, entries); !ok {
		return err
	}
	ctx, cancel := k.bound(ctx)
	defer cancel()
	if err := k.ensureTopic(ctx, topic); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	// One copy of all keys and values: the client may still hold the records
	// after Append returned early on ctx.
	size := 0
	for _, e := range entries {
		size += len(e.Key) + len(e.Value)
	}
	buf := make([]byte, 0, size)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	wg.Add(len(entries))
	for _, e := range entries {
		buf = append(buf, e.Key...)
		key := buf[len(buf)-len(e.Key):]
		buf = append(buf, e.Value...)
		value := buf[len(buf)-len(e.Value):]
		// The record's ctx is ours: a record not yet sent when it ends is
		// failed and freed, one in flight completes in the background.
		k.prod.Produce(ctx, &kgo.Record{Topic: topic, Key: key, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	acked := make(chan struct{})
	go func() {
		wg.Wait()
		close(acked)
	}()
	select {
	case <-acked:
	case <-ctx.Done():
		return ctx.Err()
	}
	if first != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(first, kgo.ErrClientClosed) {
			return ErrClosed
		}
		return fmt.Errorf("eventlog: produce to kafka topic %s: %w", topic, first)
	}
	return nil
}

// Consume implements Log with a consumer group of its own client. Commits are
// manual: what handle returned nil for is committed at most commitEvery later,
// on a revocation and before the consumer leaves. Rebalances
// wait while a batch is being handled (BlockRebalanceOnPoll), so a batch is
// never committed for a partition this member no longer owns; a handler that
// keeps failing for longer than the group's rebalance timeout (60s) gets the
// member evicted, and its batch goes to another member uncommitted.
func (k *kafkaLog) Consume(ctx context.Context, topic, group string, handle func(context.Context, []Entry) error) error {
	if err := validName("topic", topic); err != nil {
		return err
	}
	if err := validName("group", group); err != nil {
		return err
	}
	// A cluster that is down at start is waited for, as a running consumer
	// waits for one that went down.
	for backoff := minBackoff; ; backoff = min(2*backoff, maxBackoff) {
		err := k.ensureTopic(ctx, topic)
		if err == nil {
			break
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		k.log.Warn("eventlog: kafka topic not ready; retrying", zap.String("topic", topic), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}

	c := &kconsumer{k: k, topic: topic, group: group, handled: map[int32]*kgo.Record{}}
	cl, err := kgo.NewClient(append(clientOpts(k.cfg, k.log, k.tls),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// A group that never committed starts at the oldest entry kept, as the
		// embedded log's does: nothing appended before its first start is missed.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A fetch in flight covers the partitions that were ready when it was
		// sent; one that becomes ready later (at start-up, after a rebalance)
		// waits for the next fetch. The default 5s wait made a new consumer's
		// first entries 5s late; 500ms costs an idle consumer two small
		// requests a second.
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
	)...)
	if err != nil {
		return fmt.Errorf("eventlog: kafka consumer: %w", err)
	}
	defer func() {
		// What was handled is committed before leaving the group, so the next
		// owner of the partitions starts after it.
		c.commit(cl)
		cl.AllowRebalance()
		cl.Close()
	}()
	for {
		// With handled records not yet committed, the wait for more is
		// bounded, so a consumer that caught up commits within commitEvery.
		poll, cancel := ctx, context.CancelFunc(func() {})
		if c.pending() {
			poll, cancel = context.WithTimeout(ctx, commitEvery)
		}
		fetches := cl.PollRecords(poll, maxBatch)
		timedOut := poll.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return ErrClosed
		}
		if timedOut && fetches.NumRecords() == 0 {
			c.commit(cl)
			cl.AllowRebalance()
			continue
		}
		failed := false
		fetches.EachError(func(t string, p int32, err error) {
			failed = true
			k.log.Warn("eventlog: kafka fetch failed", zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			cl.AllowRebalance()
			if failed {
				// A poll that only brings errors comes back at once: pause, or
				// a lasting failure becomes a hot loop of log lines.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(minBackoff):
				}
			}
			continue
		}
		// Records come partition by partition in offset order, so a key's
		// entries keep theirs.
		batch := make([]Entry, len(recs))
		for i, r := range recs {
			batch[i] = Entry{Key: string(r.Key), Value: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		}
		if !deliver(ctx, k.log, topic, group, batch, handle) {
			return nil // uncommitted: the next owner gets the batch again
		}
		c.handle(recs)
		if c.due() {
			c.commit(cl)
		}
		cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// kconsumer tracks, per partition, the newest record handled but not yet
// committed: what the next commit (at most commitEvery after the last, or the
// revocation of the partition, or the consumer's end) must commit.
type kconsumer struct {
	k            *kafkaLog
	topic, group string

	mu      sync.Mutex
	handled map[int32]*kgo.Record
	last    time.Time // of the last commit
}

// due says the poll loop's next commit is due: commitEvery after the last.
func (c *kconsumer) due() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Since(c.last) >= commitEvery
}

// pending says records were handled that are not committed yet.
func (c *kconsumer) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.handled) > 0
}

func (c *kconsumer) handle(recs []*kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		if h := c.handled[r.Partition]; h == nil || r.Offset > h.Offset {
			c.handled[r.Partition] = r
		}
	}
}

// commit commits what was handled, bounded by Timeout. A failure is logged and
// kept for the next commit: the entries come again only if this member loses
// the partition before then (at-least-once).
func (c *kconsumer) commit(cl *kgo.Client) {
	c.mu.Lock()
	c.last = time.Now()
	recs := make([]*kgo.Record, 0, len(c.handled))
	for _, r := range c.handled {
		recs = append(recs, r)
	}
	c.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.k.cfg.Timeout)
	defer cancel()
	if err := cl.CommitRecords(ctx, recs...); err != nil {
		c.k.log.Warn("eventlog: kafka commit failed; retrying with the next batch",
			zap.String("topic", c.topic), zap.String("group", c.group), zap.Error(err))
		return
	}
	c.mu.Lock()
	for _, r := range recs {
		if c.handled[r.Partition] == r {
			delete(c.handled, r.Partition)
		}
	}
	c.mu.Unlock()
}

// revoked commits what was handled of the partitions leaving this member.
func (c *kconsumer) revoked(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
	c.commit(cl)
	c.mu.Lock()
	clear(c.handled)
	c.mu.Unlock()
}

// lost forgets the partitions taken away without a chance to commit: their
// next owner gets those entries again.
func (c *kconsumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range lost[c.topic] {
		delete(c.handled, p)
	}
}

// kgoLogger sends franz-go's warnings and errors to zap; its info level is a
// line per connection and rebalance step.
type kgoLogger struct{ l *zap.Logger }

func (g kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		key, _ := keyvals[i].(string)
		fields = append(fields, zap.Any(key, keyvals[i+1]))
	}
	msg = "kafka: " + msg
	switch level {
	case kgo.LogLevelError:
		g.l.Error(msg, fields...)
	case kgo.LogLevelWarn:
		g.l.Warn(msg, fields...)
	case kgo.LogLevelInfo:
		g.l.Info(msg, fields...)
	default:
		g.l.Debug(msg, fields...)
	}
}
