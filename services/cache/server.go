// Package cache is the per-user queue of ranked, not yet served articles: tier 1
// in Redis, tier 2 the reader's wait queue in HBase.
package cache

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// maxIDs bounds one call, so a bad caller cannot ask to drain a whole queue.
const maxIDs = 10000

// Server adapts the CacheService API to a Cache.
type Server struct {
	cachev1.UnimplementedCacheServiceServer
	cache *Cache
}

// NewServer returns a cache server.
func NewServer(cache *Cache) *Server { return &Server{cache: cache} }

// validUserChannel checks the key every call names.
func validUserChannel(user string, channel int32) error {
	if user == "" {
		return status.Error(codes.InvalidArgument, "user_id must not be empty")
	}
	if !feed.ValidChannel(channel) {
		return status.Errorf(codes.InvalidArgument, "channel_id must be 0..%d, got %d", feed.NumChannels-1, channel)
	}
	return nil
}

// Take starts a refresh (or pops for one under way) and takes up to n ids.
func (s *Server) Take(ctx context.Context, req *cachev1.TakeRequest) (*cachev1.TakeResponse, error) {
	if err := validUserChannel(req.GetUserId(), req.GetChannelId()); err != nil {
		return nil, err
	}
	if n := req.GetN(); n < 1 || n > maxIDs {
		return nil, status.Errorf(codes.InvalidArgument, "n must be 1..%d, got %d", maxIDs, n)
	}
	if req.GetTimeStamp() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "time_stamp must not be negative, got %d", req.GetTimeStamp())
	}
	t, err := s.cache.Take(ctx, req.GetUserId(), req.GetChannelId(), req.GetTimeStamp(), int(req.GetN()))
	if errors.Is(err, storage.ErrUnseeded) {
		return &cachev1.TakeResponse{Unseeded: true}, nil
	}
	if err != nil {
		return nil, server.Error(err, codes.Unavailable, "take from cache")
	}
	return &cachev1.TakeResponse{ArticleIds: t.IDs, LastTimeStamp: t.Last, Older: t.Older}, nil
}

// Store keeps ranked ids for later refreshes.
func (s *Server) Store(ctx context.Context, req *cachev1.StoreRequest) (*cachev1.StoreResponse, error) {
	if err := validUserChannel(req.GetUserId(), req.GetChannelId()); err != nil {
		return nil, err
	}
	if len(req.GetArticleIds()) > maxIDs {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d article_ids, got %d", maxIDs, len(req.GetArticleIds()))
	}
	for i, id := range req.GetArticleIds() {
		if id <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "article_ids[%d] must be positive, got %d", i, id)
		}
	}
	if err := s.cache.Store(ctx, req.GetUserId(), req.GetChannelId(), req.GetArticleIds()); err != nil {
		return nil, server.Error(err, codes.Unavailable, "store cache")
	}
	return &cachev1.StoreResponse{}, nil
}
