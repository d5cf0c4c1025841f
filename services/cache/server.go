// Package cache is the per-user queue of ranked, not yet served articles: tier 1
// a Redis sorted set, tier 2 HBase wait_recommend.
package cache

import (
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Server is the cache gRPC service. Until the cache logic lands, its RPCs answer
// UNIMPLEMENTED.
type Server struct {
	cachev1.UnimplementedCacheServiceServer
	tier1 storage.SortedSets
	tier2 storage.Queue
}

// NewServer returns a cache over tier1 and tier2.
func NewServer(tier1 storage.SortedSets, tier2 storage.Queue) *Server {
	return &Server{tier1: tier1, tier2: tier2}
}
