// Package recocenter owns the feed logic (DESIGN.md §4): refresh or history by
// time stamp, history filtering, recording served ids in history_recommend, and
// mixing.
package recocenter

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// maxArticles bounds one page whatever routing allows.
const maxArticles = 1000

// Server adapts the RecoCenterService API to a Center.
type Server struct {
	recocenterv1.UnimplementedRecoCenterServiceServer
	center *Center
}

// NewServer returns a reco-center server.
func NewServer(center *Center) *Server { return &Server{center: center} }

// Feed serves one refresh or history page.
func (s *Server) Feed(ctx context.Context, req *recocenterv1.FeedRequest) (*recocenterv1.FeedResponse, error) {
	if req.GetUserId() == "" {
		return nil, status.Error(codes.InvalidArgument, "user_id must not be empty")
	}
	if n := req.GetArticleNum(); n < 1 || n > maxArticles {
		return nil, status.Errorf(codes.InvalidArgument, "article_num must be 1..%d, got %d", maxArticles, n)
	}
	if req.GetTimeStamp() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "time_stamp must be positive, got %d", req.GetTimeStamp())
	}
	st := req.GetStrategy()
	if st == nil || st.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "strategy must be set")
	}
	server.AddLogFields(ctx, "strategy", st.GetName())
	page, err := s.center.Feed(ctx, Request{
		User:      req.GetUserId(),
		Channel:   req.GetChannelId(),
		N:         int(req.GetArticleNum()),
		Timestamp: req.GetTimeStamp(),
		Anonymous: req.GetAnonymous(),
		Strategy: Strategy{
			Name:     st.GetName(),
			Sources:  st.GetRecallSources(),
			Model:    st.GetSortModel(),
			NewRatio: st.GetNewRatio(),
			HotRatio: st.GetHotRatio(),
		},
	})
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "feed: %v", err)
	}
	return &recocenterv1.FeedResponse{ArticleIds: page.IDs, TimeStamp: page.Timestamp, History: page.History}, nil
}
