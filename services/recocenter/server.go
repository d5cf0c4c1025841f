// Package recocenter owns the feed logic (DESIGN.md §4): refresh or history by
// time stamp, history filtering, recording served ids in history_recommend, and
// mixing.
package recocenter

import (
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Peers are the services reco-center calls.
type Peers struct {
	Cache  cachev1.CacheServiceClient
	Recall recallv1.RecallServiceClient
	Sort   sortv1.SortServiceClient
}

// Server is the reco-center gRPC service. Until the feed logic lands, Feed
// answers UNIMPLEMENTED.
type Server struct {
	recocenterv1.UnimplementedRecoCenterServiceServer
	history storage.Lists
	peers   Peers
}

// NewServer returns a reco-center that records history in history and calls peers.
func NewServer(history storage.Lists, peers Peers) *Server {
	return &Server{history: history, peers: peers}
}
