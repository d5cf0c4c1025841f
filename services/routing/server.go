// Package routing serves the public UserRecommend API: it validates requests,
// buckets users into strategies (A/B) and builds the track params the app logs.
package routing

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// Config bounds what callers may ask for and names the A/B plan.
type Config struct {
	// MaxArticleNum is the largest article_num a call may ask for (at most
	// feed.MaxArticles).
	MaxArticleNum int32 `yaml:"max_article_num"`
	// AnonymousUsers are ids shared by logged-out readers: they get hot and new
	// articles and no history.
	AnonymousUsers []string `yaml:"anonymous_users"`
	// StrategiesFile is the A/B plan (see pkg/abtest); empty means the original's
	// md5 bucketing into Algo-1 and Algo-2.
	StrategiesFile string `yaml:"strategies_file"`
	// StrategiesReload is how often a changed StrategiesFile is picked up.
	StrategiesReload time.Duration `yaml:"strategies_reload"`
	// MaxFutureSkew is how far ahead of the server's clock a time_stamp may
	// be (clients' clocks drift). A stamp further ahead is refused: served, it
	// would become the reader's newest refresh and turn every later refresh
	// into a history page until the clock caught up.
	MaxFutureSkew time.Duration `yaml:"max_future_skew"`
}

// Validate checks the keys.
func (c Config) Validate() error {
	if c.MaxArticleNum < 1 || c.MaxArticleNum > feed.MaxArticles {
		return fmt.Errorf("routing.max_article_num must be 1..%d, got %d", feed.MaxArticles, c.MaxArticleNum)
	}
	if c.StrategiesReload <= 0 {
		return fmt.Errorf("routing.strategies_reload must be positive, got %v", c.StrategiesReload)
	}
	if c.MaxFutureSkew <= 0 {
		return fmt.Errorf("routing.max_future_skew must be a positive duration such as 10m, got %v", c.MaxFutureSkew)
	}
	if _, err := abtest.Load(c.StrategiesFile); err != nil {
		return fmt.Errorf("routing.strategies_file: %w", err)
	}
	return nil
}

// maxUserIDLen bounds user ids: they become row keys.
const maxUserIDLen = 256

// minTimestamp is 2000-01-01T00:00:00Z in milliseconds: an earlier time_stamp is
// a stamp in seconds (1733100000 is 1970-01-21 in milliseconds).
const minTimestamp = 946684800000

// Feeder serves a reader's feed: reco-center.
type Feeder interface {
	Feed(ctx context.Context, r feed.Request) (feed.Page, error)
}

// SimilarArticles finds an article's most similar articles: recall.
type SimilarArticles interface {
	Similar(ctx context.Context, article int64, n int) ([]int64, error)
}

// Ports are the services routing calls.
type Ports struct {
	Feed    Feeder
	Similar SimilarArticles
}

// Server adapts the public protobuf API to routing.
type Server struct {
	userreco.UnimplementedUserRecommendServer
	cfg    Config
	ports  Ports
	log    *zap.Logger
	plan   atomic.Pointer[abtest.Plan]
	served *prometheus.CounterVec
	now    func() time.Time
}

// Option changes how New builds a Server.
type Option func(*Server)

// WithClock makes now the server's clock, which bounds time_stamp (tests).
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// New returns a routing server that asks its ports for feeds and similar
// articles. WatchStrategies keeps its A/B plan current.
func New(cfg Config, ports Ports, log *zap.Logger, reg prometheus.Registerer, opts ...Option) (*Server, error) {
	plan, err := abtest.Load(cfg.StrategiesFile)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ports: ports, log: log, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	s.plan.Store(plan)
	s.served = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: server.Namespace,
		Name:      "served_articles_total",
		Help:      "Articles served on refreshes, by strategy: the denominator of CTR per strategy.",
	}, []string{"strategy"})
	if err := reg.Register(s.served); err != nil {
		return nil, fmt.Errorf("register routing metrics: %w", err)
	}
	return s, nil
}

// WatchStrategies reloads the strategies file when it changes, until ctx ends.
// A file that fails to parse keeps the plan in force.
func (s *Server) WatchStrategies(ctx context.Context) error {
	if s.cfg.StrategiesFile == "" {
		return nil
	}
	var last time.Time
	if info, err := os.Stat(s.cfg.StrategiesFile); err == nil {
		last = info.ModTime()
	}
	t := time.NewTicker(s.cfg.StrategiesReload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		info, err := os.Stat(s.cfg.StrategiesFile)
		if err != nil || info.ModTime().Equal(last) {
			continue
		}
		last = info.ModTime()
		plan, err := abtest.Load(s.cfg.StrategiesFile)
		if err != nil {
			s.log.Error("strategies not reloaded, keeping the plan in force", zap.Error(err))
			continue
		}
		s.plan.Store(plan)
		s.log.Info("strategies reloaded", zap.String("file", s.cfg.StrategiesFile))
	}
}

// UserRecommend serves a channel's feed: a refresh or a history page.
func (s *Server) UserRecommend(ctx context.Context, req *userreco.User) (*userreco.Track, error) {
	if err := s.validate(req); err != nil {
		return nil, err
	}
	if req.GetUserId() == "" {
		// The original answered an empty user id with an empty track.
		return &userreco.Track{}, nil
	}
	st := s.plan.Load().Assign(req.GetUserId())
	server.AddLogFields(ctx, "strategy", st.Name)
	page, err := s.ports.Feed.Feed(ctx, feed.Request{
		User:      req.GetUserId(),
		Channel:   req.GetChannelId(),
		N:         int(req.GetArticleNum()),
		Timestamp: req.GetTimeStamp(),
		Strategy:  st,
		Anonymous: slices.Contains(s.cfg.AnonymousUsers, req.GetUserId()),
	})
	if err != nil {
		s.log.Error("feed failed", zap.String("user", req.GetUserId()), zap.Int32("channel", req.GetChannelId()), zap.String("strategy", st.Name), zap.Error(err))
		// The code is reco-center's: a deadline stays a deadline, and only what
		// a retry can fix is Unavailable.
		return nil, server.Error(err, codes.Unavailable, "feed")
	}
	if !page.History {
		s.served.WithLabelValues(st.Name).Add(float64(len(page.IDs)))
	}
	return track(req.GetUserId(), st.Name, page.IDs, page.History, page.Timestamp), nil
}

func (s *Server) validate(req *userreco.User) error {
	if n := req.GetArticleNum(); n < 1 || n > s.cfg.MaxArticleNum {
		return status.Errorf(codes.InvalidArgument, "article_num must be 1..%d, got %d", s.cfg.MaxArticleNum, n)
	}
	if c := req.GetChannelId(); !feed.ValidChannel(c) {
		return status.Errorf(codes.InvalidArgument, "channel_id must be 0..%d, got %d", feed.NumChannels-1, c)
	}
	if err := s.validTimestamp(req.GetTimeStamp()); err != nil {
		return err
	}
	u := req.GetUserId()
	if len(u) > maxUserIDLen {
		return status.Errorf(codes.InvalidArgument, "user_id must be at most %d bytes, got %d", maxUserIDLen, len(u))
	}
	for _, r := range u {
		if unicode.IsControl(r) {
			return status.Errorf(codes.InvalidArgument, "user_id must not contain control characters, got %q", u)
		}
	}
	return nil
}

// validTimestamp refuses a time_stamp that is not the client's current time in
// milliseconds: not positive, before 2000 (seconds), or further ahead of the
// server's clock than routing.max_future_skew (a year-3000 stamp froze the
// original's feed of that reader for ever).
func (s *Server) validTimestamp(ts int64) error {
	switch {
	case ts <= 0:
		return status.Errorf(codes.InvalidArgument, "time_stamp must be a positive time in milliseconds since the epoch, got %d", ts)
	case ts < minTimestamp:
		return status.Errorf(codes.InvalidArgument, "time_stamp %d is before 2000-01-01: it must be milliseconds since the epoch, not seconds (%d s would be %d ms)", ts, ts, ts*1000)
	}
	now := s.now()
	if limit := now.Add(s.cfg.MaxFutureSkew).UnixMilli(); ts > limit {
		return status.Errorf(codes.InvalidArgument, "time_stamp %d (%s) is more than %v ahead of the server's clock (%d, %s): it must be the client's current time in milliseconds since the epoch",
			ts, time.UnixMilli(ts).UTC().Format(time.RFC3339), s.cfg.MaxFutureSkew, now.UnixMilli(), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// ArticleRecommend returns the article_num articles most similar to article_id.
// An article no build wrote is NOT_FOUND (recall's code), which a known article
// without neighbours is not: that one gets an empty list. When recall fails the
// page still renders: the answer is an empty list, and the failure is logged.
func (s *Server) ArticleRecommend(ctx context.Context, req *userreco.Article) (*userreco.Similar, error) {
	if req.GetArticleId() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "article_id must be positive, got %d", req.GetArticleId())
	}
	if n := req.GetArticleNum(); n < 1 || n > s.cfg.MaxArticleNum {
		return nil, status.Errorf(codes.InvalidArgument, "article_num must be 1..%d, got %d", s.cfg.MaxArticleNum, n)
	}
	ids, err := s.ports.Similar.Similar(ctx, req.GetArticleId(), int(req.GetArticleNum()))
	if err != nil {
		if server.Code(err, codes.Unavailable) == codes.NotFound {
			return nil, server.Error(err, codes.NotFound, "article_recommend")
		}
		s.log.Error("similar articles unavailable, serving none", zap.Int64("article_id", req.GetArticleId()), zap.Error(err))
		return &userreco.Similar{}, nil
	}
	return &userreco.Similar{ArticleId: ids}, nil
}
