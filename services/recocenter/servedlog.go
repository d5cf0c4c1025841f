package recocenter

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// ServedTopic is the log topic of served ids.
const ServedTopic = "served"

// The consumer groups of the served log: one applies it to history, the other
// to the seen sets, each at its own pace (one store down does not hold the
// other back).
const (
	servedGroup = "history"
	seenGroup   = "seen"
)

// servedEntry is one refresh's served ids on the log. Claimed says every id
// passed the seen sets' claim, which added it there: only an entry that is
// not needs applying to them.
type servedEntry struct {
	User      string  `json:"user"`
	Channel   int32   `json:"channel"`
	Timestamp int64   `json:"time_stamp"`
	IDs       []int64 `json:"ids"`
	Claimed   bool    `json:"claimed,omitempty"`
}

// Served is the log of served ids over an event log: reco-center appends to it
// before answering a refresh, Apply turns each entry into a history version
// and ApplySeen adds its ids to the reader's seen sets.
type Served struct {
	log     eventlog.Log
	history storage.History
	claims  storage.ServedClaims
	seenTTL time.Duration
	logger  *zap.Logger
}

// NewServed returns the served-ids log on log, applied to history and to the
// seen sets in claims (kept for seenTTL).
func NewServed(log eventlog.Log, history storage.History, claims storage.ServedClaims, seenTTL time.Duration, logger *zap.Logger) *Served {
	return &Served{log: log, history: history, claims: claims, seenTTL: seenTTL, logger: logger}
}

// Append stores one refresh's served ids durably; the reader's id keys the
// entry, so one reader's refreshes stay in order. claimed says they are all
// in the seen sets already.
func (s *Served) Append(ctx context.Context, user string, channel int32, ts int64, ids []int64, claimed bool) error {
	b, err := json.Marshal(servedEntry{User: user, Channel: channel, Timestamp: ts, IDs: ids, Claimed: claimed})
	if err != nil {
		return fmt.Errorf("encode served ids: %w", err)
	}
	return s.log.Append(ctx, ServedTopic, eventlog.Entry{Key: user, Value: b})
}

// Apply records every logged refresh in history until ctx ends: the background
// work that makes a logged refresh a history version however the request that
// logged it ended. History merges writes at one stamp, so an entry applied twice
// (redelivered after a crash, or already written by the request) changes
// nothing. A malformed entry is skipped and logged: it can never apply.
func (s *Served) Apply(ctx context.Context) error {
	return s.apply(ctx, servedGroup, func(ctx context.Context, v servedEntry) error {
		return s.history.Record(ctx, v.User, v.Channel, v.Timestamp, v.IDs)
	})
}

// ApplySeen adds every logged refresh's ids to the reader's seen set of its
// channel until ctx ends. A refresh whose claim fell back to history (Redis
// unreachable for it) left the set without its ids, and the process that
// remembered them may be gone since; the log still has them. They are added
// to the set whether it is seeded or not (a set lost and not seeded again
// yet gets history added to them when it is).
func (s *Served) ApplySeen(ctx context.Context) error {
	return s.apply(ctx, seenGroup, func(ctx context.Context, v servedEntry) error {
		if v.Claimed {
			return nil // the claim that served them added them
		}
		_, err := s.claims.ClaimProvisional(ctx, v.User, v.Channel, v.IDs, s.seenTTL)
		return err
	})
}

// applyParallel is how many readers' entries of a batch apply side by side.
// In a row, one store round trip per entry bounded an applier at about a
// thousand refreshes a second on HBase, below what the feed serves.
const applyParallel = 16

// apply hands every well-formed entry of the log to do, as group; a do error
// retries the batch (the store is down, and the log holds it), a malformed
// entry is skipped and logged: it can never apply. do is idempotent: an entry
// may come again after a crash. One reader's entries apply in log order (a
// later refresh may merge into the same version), different readers' side by
// side.
func (s *Served) apply(ctx context.Context, group string, do func(context.Context, servedEntry) error) error {
	return s.log.Consume(ctx, ServedTopic, group, func(ctx context.Context, batch []eventlog.Entry) error {
		byUser := map[string][]servedEntry{}
		var users []string
		for _, e := range batch {
			var v servedEntry
			if err := json.Unmarshal(e.Value, &v); err != nil || v.User == "" || !feed.ValidChannel(v.Channel) || v.Timestamp <= 0 {
				s.logger.Error("malformed served-ids entry skipped", zap.String("group", group), zap.String("key", e.Key), zap.ByteString("value", e.Value), zap.Error(err))
				continue
			}
			if byUser[v.User] == nil {
				users = append(users, v.User)
			}
			byUser[v.User] = append(byUser[v.User], v)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(applyParallel)
		for _, u := range users {
			g.Go(func() error {
				for _, v := range byUser[u] {
					if err := do(gctx, v); err != nil {
						return fmt.Errorf("apply served ids of %s to %s: %w", v.User, group, err)
					}
				}
				return nil
			})
		}
		return g.Wait()
	})
}
