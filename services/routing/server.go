// Package routing serves the public UserRecommend API: it validates requests,
// buckets users into strategies (A/B) and builds the track params the app logs.
package routing

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

// Config bounds what callers may ask for.
type Config struct {
	// MaxArticleNum is the largest article_num a call may ask for.
	MaxArticleNum int32 `yaml:"max_article_num"`
}

// Server adapts the public protobuf API to routing. user_recommend answers
// UNIMPLEMENTED until the feed logic lands.
type Server struct {
	userreco.UnimplementedUserRecommendServer
	cfg    Config
	log    *zap.Logger
	center recocenterv1.RecoCenterServiceClient
	recall recallv1.RecallServiceClient
}

// NewServer returns a routing server that asks center for feeds and recall for
// similar articles.
func NewServer(cfg Config, log *zap.Logger, center recocenterv1.RecoCenterServiceClient, recall recallv1.RecallServiceClient) *Server {
	return &Server{cfg: cfg, log: log, center: center, recall: recall}
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
