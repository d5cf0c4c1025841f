// Package sort ranks candidates with a CTR model over user and article features
// (DESIGN.md §5).
package sort

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// maxCandidates bounds one Rank call.
const maxCandidates = 10000

// Server adapts the SortService API to a Ranker.
type Server struct {
	sortv1.UnimplementedSortServiceServer
	ranker *Ranker
}

// NewServer returns a sort server.
func NewServer(ranker *Ranker) *Server { return &Server{ranker: ranker} }

// Rank orders candidates by predicted click-through rate.
func (s *Server) Rank(ctx context.Context, req *sortv1.RankRequest) (*sortv1.RankResponse, error) {
	if req.GetUserId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user_id must not be empty")
	}
	if !feed.ValidChannel(req.GetChannelId()) {
		return nil, status.Errorf(codes.InvalidArgument, "channel_id must be 0..%d, got %d", feed.NumChannels-1, req.GetChannelId())
	}
	if n := len(req.GetArticleIds()); n > maxCandidates {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d article_ids, got %d", maxCandidates, n)
	}
	if req.GetModel() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "model must be a positive model id such as 200, got %d", req.GetModel())
	}
	for i, id := range req.GetArticleIds() {
		if id <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "article_ids[%d] must be positive, got %d", i, id)
		}
	}
	ids, scores, err := s.ranker.Rank(ctx, req.GetUserId(), req.GetChannelId(), feed.Model(req.GetModel()), req.GetArticleIds())
	switch {
	case errors.Is(err, ErrUnknownModel):
		return nil, status.Errorf(codes.FailedPrecondition, "%v: no such model file is loaded", err)
	case err != nil:
		return nil, server.Error(err, codes.Unavailable, "rank")
	}
	return &sortv1.RankResponse{ArticleIds: ids, Scores: scores}, nil
}
