// Package recocenter owns the feed logic (DESIGN.md §4): refresh or history by
// time stamp, history filtering, recording served ids in history, and mixing.
package recocenter

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// Server adapts the RecoCenterService API to a Center.
type Server struct {
	recocenterv1.UnimplementedRecoCenterServiceServer
	center *Center
}

// NewServer returns a reco-center server.
func NewServer(center *Center) *Server { return &Server{center: center} }

// Feed serves one refresh or history page.
func (s *Server) Feed(ctx context.Context, req *recocenterv1.FeedRequest) (*recocenterv1.FeedResponse, error) {
	r := requestFromProto(req)
	server.AddLogFields(ctx, "strategy", r.Strategy.Name)
	page, err := s.center.Feed(ctx, r)
	switch {
	case errors.Is(err, ErrInvalidRequest):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, server.Error(err, codes.Unavailable, "feed")
	}
	return &recocenterv1.FeedResponse{ArticleIds: page.IDs, TimeStamp: page.Timestamp, History: page.History}, nil
}

func requestFromProto(req *recocenterv1.FeedRequest) feed.Request {
	st := req.GetStrategy()
	sources := make([]feed.Source, len(st.GetRecallSources()))
	for i, src := range st.GetRecallSources() {
		sources[i] = feed.Source(src)
	}
	return feed.Request{
		User:      req.GetUserId(),
		Channel:   req.GetChannelId(),
		N:         int(req.GetArticleNum()),
		Timestamp: req.GetTimeStamp(),
		Anonymous: req.GetAnonymous(),
		Strategy: feed.Strategy{
			Name:     st.GetName(),
			Recall:   sources,
			Sort:     feed.Model(st.GetSortModel()),
			NewRatio: st.GetNewRatio(),
			HotRatio: st.GetHotRatio(),
		},
	}
}
