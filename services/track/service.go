// Package track takes readers' actions in (DESIGN.md §8): TrackService/Report on
// the public port and POST /v1/actions over HTTP put each accepted line on the
// action log (topic click-trace, where log shippers produce the same lines),
// keyed by reader so that one reader's actions stay in order and a nearline
// consumer owns every action of the readers it serves.
package track

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/toutiao-reco/toutiao-reco/pkg/actions"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// Config configures the action log and how its lines are read.
type Config struct {
	// Topic is the action log (the original's Kafka topic is click-trace):
	// where Report appends and nearline consumes.
	Topic string `yaml:"topic"`
	// Timezone is the zone of action times in the original's local form
	// "2006-01-02 15:04:05": an IANA name such as Asia/Shanghai, or Local
	// (the process's zone) or UTC.
	Timezone string `yaml:"timezone"`
	// MaxBatch bounds the lines of one Report or one POST /v1/actions.
	MaxBatch int `yaml:"max_batch"`
}

// Validate checks the zone and the batch bound.
func (c Config) Validate() error {
	if c.Topic == "" {
		return errors.New("track.topic is required (the original's is click-trace)")
	}
	if _, err := c.Location(); err != nil {
		return err
	}
	if c.MaxBatch < 1 || c.MaxBatch > 100000 {
		return fmt.Errorf("track.max_batch must be 1..100000, got %d", c.MaxBatch)
	}
	return nil
}

// Location is the zone Timezone names.
func (c Config) Location() (*time.Location, error) {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return nil, fmt.Errorf("track.timezone %q is not a time zone (an IANA name such as Asia/Shanghai, Local or UTC): %v", c.Timezone, err)
	}
	return loc, nil
}

// Rejected is one refused line.
type Rejected struct {
	Index  int
	Reason string
}

// ErrTooMany is a batch over Config.MaxBatch.
var ErrTooMany = errors.New("too many lines")

// Reporter puts accepted action lines on the log.
type Reporter struct {
	cfg   Config
	loc   *time.Location
	log   eventlog.Log
	now   func() time.Time
	lines *prometheus.CounterVec
}

// New returns a reporter appending to log, its metrics registered in reg.
func New(cfg Config, log eventlog.Log, reg prometheus.Registerer) (*Reporter, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: server.Namespace,
		Name:      "action_lines_total",
		Help:      "Action lines received by TrackService/Report and POST /v1/actions, by outcome: accepted (on the action log) or rejected (malformed).",
	}, []string{"outcome"})
	if err := reg.Register(lines); err != nil {
		return nil, fmt.Errorf("register track metrics: %w", err)
	}
	return &Reporter{cfg: cfg, loc: loc, log: log, now: time.Now, lines: lines}, nil
}

// Report decodes each line and appends the good ones to the action log in one
// append; when it returns nil they are durable. The lines go on the log as the
// app sent them (trimmed), so a nearline consumer reads the same bytes a log
// shipper would have produced. An append that fails accepts nothing: the
// caller retries the batch.
func (r *Reporter) Report(ctx context.Context, lines [][]byte) (accepted int, rejected []Rejected, err error) {
	if len(lines) > r.cfg.MaxBatch {
		return 0, nil, fmt.Errorf("%w: %d lines, at most %d per call", ErrTooMany, len(lines), r.cfg.MaxBatch)
	}
	now := r.now()
	entries := make([]eventlog.Entry, 0, len(lines))
	for i, line := range lines {
		a, err := actions.Parse(line, r.loc, now)
		if err != nil {
			rejected = append(rejected, Rejected{Index: i, Reason: err.Error()})
			continue
		}
		entries = append(entries, eventlog.Entry{Key: a.User, Value: trim(line)})
	}
	r.lines.WithLabelValues("rejected").Add(float64(len(rejected)))
	if len(entries) == 0 {
		return 0, rejected, nil
	}
	if err := r.log.Append(ctx, r.cfg.Topic, entries...); err != nil {
		return 0, nil, fmt.Errorf("append %d action lines: %w", len(entries), err)
	}
	r.lines.WithLabelValues("accepted").Add(float64(len(entries)))
	return len(entries), rejected, nil
}

// trim drops the spaces and line breaks around a line.
func trim(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
