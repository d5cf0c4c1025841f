// Package recall reads candidates from the recall sources a strategy names
// (DESIGN.md §5) and similar articles.
package recall

import (
	"context"

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

// Server is the recall gRPC service. Recall answers UNIMPLEMENTED until the
// multi-source recall lands.
type Server struct {
	recallv1.UnimplementedRecallServiceServer
	stores Stores
}

// NewServer returns a recall service over stores.
func NewServer(stores Stores) *Server { return &Server{stores: stores} }

// Similar returns the n highest-scored neighbours of an article (source 105).
func (s *Server) Similar(ctx context.Context, req *recallv1.SimilarRequest) (*recallv1.SimilarResponse, error) {
	if req.GetArticleId() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "article_id must be positive, got %d", req.GetArticleId())
	}
	if req.GetN() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "n must be positive, got %d", req.GetN())
	}
	similar, err := s.stores.Similarity.Similar(ctx, req.GetArticleId(), int(req.GetN()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read similar articles of %d: %v", req.GetArticleId(), err)
	}
	ids := make([]int64, len(similar))
	for i, sc := range similar {
		ids[i] = sc.ID
	}
	return &recallv1.SimilarResponse{ArticleIds: ids}, nil
}
