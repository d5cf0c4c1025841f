// Package routing serves the public UserRecommend API: it validates requests,
// buckets users into strategies (A/B) and builds the track params the app logs.
package routing

import (
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

// Server adapts the public protobuf API to routing. The feed itself is built by
// reco-center; until the feed logic lands every RPC answers UNIMPLEMENTED.
type Server struct {
	userreco.UnimplementedUserRecommendServer
	center recocenterv1.RecoCenterServiceClient
}

// NewServer returns a routing server that asks center for feeds.
func NewServer(center recocenterv1.RecoCenterServiceClient) *Server {
	return &Server{center: center}
}
