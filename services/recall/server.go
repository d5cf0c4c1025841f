// Package recall reads candidates from the recall sources a strategy names
// (DESIGN.md §5), the channels' popular articles and similar articles.
package recall

import (
	"context"
	"errors"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// maxSimilar bounds one Similar call.
const maxSimilar = 1000

// Server adapts the RecallService API to a Recall.
type Server struct {
	recallv1.UnimplementedRecallServiceServer
	recall *Recall
}

// NewServer returns a recall server.
func NewServer(recall *Recall) *Server { return &Server{recall: recall} }

func validChannel(ch int32) error {
	if !feed.ValidChannel(ch) {
		return status.Errorf(codes.InvalidArgument, "channel_id must be 0..%d, got %d", feed.NumChannels-1, ch)
	}
	return nil
}

// Recall returns the merged candidates of the requested sources. Sources that
// fail are logged and skipped; only when every source failed is the call an
// error.
func (s *Server) Recall(ctx context.Context, req *recallv1.RecallRequest) (*recallv1.RecallResponse, error) {
	if req.GetUserId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user_id must not be empty")
	}
	if err := validChannel(req.GetChannelId()); err != nil {
		return nil, err
	}
	if len(req.GetSources()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "sources must name at least one recall source")
	}
	sources := make([]feed.Source, len(req.GetSources()))
	for i, src := range req.GetSources() {
		sources[i] = feed.Source(src)
	}
	cands, read, err := s.recall.Recall(ctx, req.GetUserId(), req.GetChannelId(), sources)
	if errors.Is(err, ErrUnknownSource) {
		return nil, status.Errorf(codes.InvalidArgument, "%v (want %d..%d)", err, feed.SourceALS, feed.SourceHot)
	}
	if err != nil {
		s.recall.log.Warn("recall sources failed", zap.String("user", req.GetUserId()), zap.Int32("channel", req.GetChannelId()), zap.Error(err))
		if len(cands) == 0 {
			return nil, server.Error(err, codes.Unavailable, "recall")
		}
	}
	out := make([]*recallv1.Candidate, len(cands))
	for i, c := range cands {
		out[i] = &recallv1.Candidate{ArticleId: c.ID, Source: recallv1.Source(c.Source)}
	}
	return &recallv1.RecallResponse{Candidates: out, Read: readToProto(read)}, nil
}

// Consume deletes the recall runs a Recall read.
func (s *Server) Consume(ctx context.Context, req *recallv1.ConsumeRequest) (*recallv1.ConsumeResponse, error) {
	if req.GetUserId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user_id must not be empty")
	}
	if err := validChannel(req.GetChannelId()); err != nil {
		return nil, err
	}
	read := readFromProto(req.GetRead())
	for i, rr := range read {
		if rr.Source < feed.SourceALS || rr.Source > feed.SourceOnline || rr.Through <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "read[%d]: want a source of %d..%d and a positive through, got %d and %d", i, feed.SourceALS, feed.SourceOnline, rr.Source, rr.Through)
		}
	}
	if err := s.recall.Consume(ctx, req.GetUserId(), req.GetChannelId(), read); err != nil {
		return nil, server.Error(err, codes.Unavailable, "consume recall runs")
	}
	return &recallv1.ConsumeResponse{}, nil
}

func readToProto(read []feed.ReadRuns) []*recallv1.ReadRuns {
	out := make([]*recallv1.ReadRuns, len(read))
	for i, rr := range read {
		out[i] = &recallv1.ReadRuns{Source: recallv1.Source(rr.Source), Through: rr.Through}
	}
	return out
}

func readFromProto(read []*recallv1.ReadRuns) []feed.ReadRuns {
	out := make([]feed.ReadRuns, len(read))
	for i, rr := range read {
		out[i] = feed.ReadRuns{Source: feed.Source(rr.GetSource()), Through: rr.GetThrough()}
	}
	return out
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
	switch {
	case errors.Is(err, storage.ErrUnknownArticle):
		return nil, status.Errorf(codes.NotFound, "article_id %d is unknown: no build wrote its features or neighbours", req.GetArticleId())
	case err != nil:
		return nil, server.Error(err, codes.Unavailable, "similar articles")
	}
	return &recallv1.SimilarResponse{ArticleIds: ids}, nil
}
