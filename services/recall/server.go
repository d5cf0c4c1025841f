// Package recall reads candidates from the recall sources a strategy names
// (DESIGN.md §5) and similar articles.
package recall

import (
	"context"
	"errors"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Stores are what recall reads.
type Stores struct {
	Lists      storage.Lists
	Similarity storage.Similarity
	Sets       storage.SortedSets
}

// maxSimilar bounds one Similar call.
const maxSimilar = 1000

// Server adapts the RecallService API to a Recall.
type Server struct {
	recallv1.UnimplementedRecallServiceServer
	recall *Recall
	log    *zap.Logger
}

// NewServer returns a recall server.
func NewServer(recall *Recall, log *zap.Logger) *Server { return &Server{recall: recall, log: log} }

// Recall returns the merged candidates of the requested sources. Sources that
// fail are logged and skipped; only when every source failed is the call an
// error.
func (s *Server) Recall(ctx context.Context, req *recallv1.RecallRequest) (*recallv1.RecallResponse, error) {
	if req.GetUserId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user_id must not be empty")
	}
	if len(req.GetSources()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "sources must name at least one recall source")
	}
	cands, err := s.recall.Recall(ctx, req.GetUserId(), req.GetChannelId(), req.GetSources())
	if errors.Is(err, ErrUnknownSource) {
		return nil, status.Errorf(codes.InvalidArgument, "%v (want 100..104)", err)
	}
	if err != nil {
		s.log.Warn("recall sources failed", zap.String("user", req.GetUserId()), zap.Int32("channel", req.GetChannelId()), zap.Error(err))
		if len(cands) == 0 {
			return nil, status.Errorf(codes.Unavailable, "recall: %v", err)
		}
	}
	out := make([]*recallv1.Candidate, len(cands))
	for i, c := range cands {
		out[i] = &recallv1.Candidate{ArticleId: c.ID, Source: c.Source}
	}
	return &recallv1.RecallResponse{Candidates: out}, nil
}

// Similar returns the n highest-scored neighbours of an article (source 105).
func (s *Server) Similar(ctx context.Context, req *recallv1.SimilarRequest) (*recallv1.SimilarResponse, error) {
	if req.GetArticleId() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "article_id must be positive, got %d", req.GetArticleId())
	}
	if n := req.GetN(); n < 1 || n > maxSimilar {
		return nil, status.Errorf(codes.InvalidArgument, "n must be 1..%d, got %d", maxSimilar, n)
	}
	ids, err := s.recall.Similar(ctx, req.GetArticleId(), int(req.GetN()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read similar articles of %d: %v", req.GetArticleId(), err)
	}
	return &recallv1.SimilarResponse{ArticleIds: ids}, nil
}
