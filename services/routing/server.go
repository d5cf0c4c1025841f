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
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// Config bounds what callers may ask for and names the A/B plan.
type Config struct {
	// Channels is the number of channels: channel_id must be 0..Channels-1
	// (0 is the all-channels feed).
	Channels int32 `yaml:"channels"`
	// MaxArticleNum is the largest article_num a call may ask for.
	MaxArticleNum int32 `yaml:"max_article_num"`
	// AnonymousUsers are ids shared by logged-out readers: they get hot and new
	// articles and no history.
	AnonymousUsers []string `yaml:"anonymous_users"`
	// StrategiesFile is the A/B plan (see pkg/abtest); empty means the original's
	// md5 bucketing into Algo-1 and Algo-2.
	StrategiesFile string `yaml:"strategies_file"`
	// StrategiesReload is how often a changed StrategiesFile is picked up.
	StrategiesReload time.Duration `yaml:"strategies_reload"`
}

// Validate checks the keys.
func (c Config) Validate() error {
	if c.Channels < 1 {
		return fmt.Errorf("routing.channels must be at least 1, got %d", c.Channels)
	}
	if c.MaxArticleNum < 1 {
		return fmt.Errorf("routing.max_article_num must be at least 1, got %d", c.MaxArticleNum)
	}
	if c.StrategiesReload <= 0 {
		return fmt.Errorf("routing.strategies_reload must be positive, got %v", c.StrategiesReload)
	}
	if _, err := abtest.Load(c.StrategiesFile); err != nil {
		return fmt.Errorf("routing.strategies_file: %w", err)
	}
	return nil
}

// maxUserIDLen bounds user ids: they become row keys.
const maxUserIDLen = 256

// Server adapts the public protobuf API to routing.
type Server struct {
	userreco.UnimplementedUserRecommendServer
	cfg    Config
	log    *zap.Logger
	center recocenterv1.RecoCenterServiceClient
	recall recallv1.RecallServiceClient
	plan   atomic.Pointer[abtest.Plan]
	served *prometheus.CounterVec
}

// NewServer returns a routing server that asks center for feeds and recall for
// similar articles.
func NewServer(cfg Config, log *zap.Logger, reg prometheus.Registerer, center recocenterv1.RecoCenterServiceClient, recall recallv1.RecallServiceClient) (*Server, error) {
	plan, err := abtest.Load(cfg.StrategiesFile)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, center: center, recall: recall}
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
func (s *Server) WatchStrategies(ctx context.Context) {
	if s.cfg.StrategiesFile == "" {
		return
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
			return
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
	a := s.plan.Load().Assign(req.GetUserId())
	server.AddLogFields(ctx, "strategy", a.Name)
	sources := make([]recallv1.Source, len(a.Strategy.Recall))
	for i, r := range a.Strategy.Recall {
		sources[i] = recallv1.Source(r)
	}
	resp, err := s.center.Feed(ctx, &recocenterv1.FeedRequest{
		UserId:     req.GetUserId(),
		ChannelId:  req.GetChannelId(),
		ArticleNum: req.GetArticleNum(),
		TimeStamp:  req.GetTimeStamp(),
		Anonymous:  slices.Contains(s.cfg.AnonymousUsers, req.GetUserId()),
		Strategy: &recocenterv1.Strategy{
			Name:          a.Name,
			RecallSources: sources,
			SortModel:     a.Strategy.Sort,
			NewRatio:      a.Strategy.NewRatio,
			HotRatio:      a.Strategy.HotRatio,
		},
	})
	if err != nil {
		s.log.Error("feed failed", zap.String("user", req.GetUserId()), zap.Int32("channel", req.GetChannelId()), zap.String("strategy", a.Name), zap.Error(err))
		return nil, status.Errorf(codes.Unavailable, "feed unavailable: %v", status.Convert(err).Message())
	}
	if !resp.GetHistory() {
		s.served.WithLabelValues(a.Name).Add(float64(len(resp.GetArticleIds())))
	}
	return track(req.GetUserId(), a.Name, resp.GetArticleIds(), resp.GetHistory(), resp.GetTimeStamp()), nil
}

func (s *Server) validate(req *userreco.User) error {
	if n := req.GetArticleNum(); n < 1 || n > s.cfg.MaxArticleNum {
		return status.Errorf(codes.InvalidArgument, "article_num must be 1..%d, got %d", s.cfg.MaxArticleNum, n)
	}
	if c := req.GetChannelId(); c < 0 || c >= s.cfg.Channels {
		return status.Errorf(codes.InvalidArgument, "channel_id must be 0..%d, got %d", s.cfg.Channels-1, c)
	}
	if ts := req.GetTimeStamp(); ts <= 0 {
		return status.Errorf(codes.InvalidArgument, "time_stamp must be a positive time in milliseconds, got %d", ts)
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

// ArticleRecommend returns the article_num articles most similar to article_id.
// When recall fails the page still renders: the answer is an empty list, and the
// failure is logged.
func (s *Server) ArticleRecommend(ctx context.Context, req *userreco.Article) (*userreco.Similar, error) {
	if req.GetArticleId() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "article_id must be positive, got %d", req.GetArticleId())
	}
	if n := req.GetArticleNum(); n < 1 || n > s.cfg.MaxArticleNum {
		return nil, status.Errorf(codes.InvalidArgument, "article_num must be 1..%d, got %d", s.cfg.MaxArticleNum, n)
	}
	resp, err := s.recall.Similar(ctx, &recallv1.SimilarRequest{ArticleId: req.GetArticleId(), N: req.GetArticleNum()})
	if err != nil {
		s.log.Error("similar articles unavailable, serving none", zap.Int64("article_id", req.GetArticleId()), zap.Error(err))
		return &userreco.Similar{}, nil
	}
	return &userreco.Similar{ArticleId: resp.GetArticleIds()}, nil
}
