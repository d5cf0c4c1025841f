// Package recall reads candidates from the recall sources a strategy names
// (DESIGN.md §5) and similar articles.
package recall

import (
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Stores are what recall reads.
type Stores struct {
	Lists      storage.Lists
	Similarity storage.Similarity
	Sets       storage.SortedSets
}

// Server is the recall gRPC service. Until the recall logic lands, its RPCs
// answer UNIMPLEMENTED.
type Server struct {
	recallv1.UnimplementedRecallServiceServer
	stores Stores
}

// NewServer returns a recall service over stores.
func NewServer(stores Stores) *Server { return &Server{stores: stores} }
