// Package sort ranks candidates with a CTR model over user and article features
// (DESIGN.md §5).
package sort

import (
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Server is the sort gRPC service. Until ranking lands, Rank answers
// UNIMPLEMENTED.
type Server struct {
	sortv1.UnimplementedSortServiceServer
	features storage.Features
}

// NewServer returns a sort service reading features.
func NewServer(features storage.Features) *Server { return &Server{features: features} }
