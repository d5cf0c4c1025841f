package recocenter

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// ServedTopic is the log topic of served ids.
const ServedTopic = "served"

// servedGroup is the consumer group of the history applier.
const servedGroup = "history"

// servedEntry is one refresh's served ids on the log.
type servedEntry struct {
	User      string  `json:"user"`
	Channel   int32   `json:"channel"`
	Timestamp int64   `json:"time_stamp"`
	IDs       []int64 `json:"ids"`
}

// Served is the log of served ids over an event log: reco-center appends to it
// before answering a refresh, and Apply turns each entry into a history
// version.
type Served struct {
	log     eventlog.Log
	history storage.History
	logger  *zap.Logger
}

// NewServed returns the served-ids log on log, applied to history.
func NewServed(log eventlog.Log, history storage.History, logger *zap.Logger) *Served {
	return &Served{log: log, history: history, logger: logger}
}

// Append stores one refresh's served ids durably; the reader's id keys the
// entry, so one reader's refreshes stay in order.
func (s *Served) Append(ctx context.Context, user string, channel int32, ts int64, ids []int64) error {
	b, err := json.Marshal(servedEntry{User: user, Channel: channel, Timestamp: ts, IDs: ids})
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
	return s.log.Consume(ctx, ServedTopic, servedGroup, func(ctx context.Context, batch []eventlog.Entry) error {
		for _, e := range batch {
			var v servedEntry
			if err := json.Unmarshal(e.Value, &v); err != nil || v.User == "" || !feed.ValidChannel(v.Channel) || v.Timestamp <= 0 {
				s.logger.Error("malformed served-ids entry skipped", zap.String("key", e.Key), zap.ByteString("value", e.Value), zap.Error(err))
				continue
			}
			if err := s.history.Record(ctx, v.User, v.Channel, v.Timestamp, v.IDs); err != nil {
				// The batch is retried: history is down, and the log holds it.
				return fmt.Errorf("apply served ids of %s: %w", v.User, err)
			}
		}
		return nil
	})
}
