package eventlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/breaker"
)

// spillLog is a log that stays writable while its primary (Kafka) is not: an
// Append the primary does not acknowledge in time is written to a local
// embedded log, the spill, and answered once fsync'd there; each spilled topic
// is drained into the primary, in order, once the primary takes appends again.
// A dead primary costs an Append ~0 ms (a circuit breaker skips it) plus a
// local fsync, so what must not be lost (the served ids a reader got, what
// readers did) is durable before the answer whatever Kafka does. The spill
// lives on this process's disk: it survives a restart of the process, not the
// loss of its disk (give it a persistent volume).
//
// Order per key holds within the primary and within the spill, not across
// them: a drained entry lands after entries appended to the primary while it
// was spilled. The consumers of this suite do not depend on it (history
// merges by time stamp, actions are counted).
type spillLog struct {
	primary Log
	spill   *embeddedLog
	breaker *breaker.Breaker
	log     *zap.Logger

	ctx    context.Context // ends the drains
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	draining map[string]bool
}

// spillGroup is the spill's consumer group: the drain into the primary.
const spillGroup = "drain"

// drainTimeout bounds the primary's acknowledgement of one drained batch; a
// batch not acknowledged in it is tried again.
const drainTimeout = 2 * time.Second

// primaryShare is the part of an Append's time left that the primary may take;
// the rest is the spill's (a local group-committed fsync: milliseconds).
const primaryShare = 0.7

func openSpill(primary Log, cfg EmbeddedConfig, log *zap.Logger) (*spillLog, error) {
	spill, err := openEmbedded(cfg, log)
	if err != nil {
		return nil, fmt.Errorf("eventlog: spill: %w", err)
	}
	s := &spillLog{primary: primary, spill: spill, breaker: breaker.New("event log", nil), log: log, draining: map[string]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Topics spilled before a restart are drained too.
	dirs, err := os.ReadDir(cfg.Dir)
	if err != nil {
		_ = spill.close()
		return nil, fmt.Errorf("eventlog: spill: %w", err)
	}
	for _, d := range dirs {
		if d.IsDir() && validName("topic", d.Name()) == nil {
			s.drain(d.Name())
		}
	}
	return s, nil
}

// close stops the drains, then closes the spill.
func (s *spillLog) close() error {
	s.cancel()
	s.wg.Wait()
	return s.spill.close()
}

// Append implements Log: the primary's acknowledgement, or the spill's fsync.
func (s *spillLog) Append(ctx context.Context, topic string, entries ...Entry) error {
	if ok, err := checkAppend(ctx, topic, entries); !ok {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	if deadline, ok := ctx.Deadline(); ok {
		pctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Duration(float64(time.Until(deadline))*primaryShare)))
	}
	err := s.breaker.Do(pctx, nil, func(ctx context.Context) error { return s.primary.Append(ctx, topic, entries...) })
	cancel()
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrTooLarge) {
		return err
	}
	if serr := s.spill.Append(ctx, topic, entries...); serr != nil {
		return fmt.Errorf("%w; spill: %w", err, serr)
	}
	s.drain(topic)
	return nil
}

// Consume implements Log: entries reach consumers through the primary.
func (s *spillLog) Consume(ctx context.Context, topic, group string, handle func(context.Context, []Entry) error) error {
	return s.primary.Consume(ctx, topic, group, handle)
}

// drain starts moving topic's spilled entries into the primary, unless it runs
// already: a batch is committed once the primary acknowledged it, and retried
// (with the log's backoff) while the primary is down.
func (s *spillLog) drain(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining[topic] || s.ctx.Err() != nil {
		return
	}
	s.draining[topic] = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.spill.Consume(s.ctx, topic, spillGroup, func(ctx context.Context, batch []Entry) error {
			ctx, cancel := context.WithTimeout(ctx, drainTimeout)
			defer cancel()
			return s.breaker.Do(ctx, nil, func(ctx context.Context) error { return s.primary.Append(ctx, topic, batch...) })
		})
		if err != nil && s.ctx.Err() == nil {
			s.log.Error("spilled entries not drained into the event log", zap.String("topic", topic), zap.Error(err))
		}
	}()
}
