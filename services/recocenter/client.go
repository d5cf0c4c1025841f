package recocenter

import (
	"context"

	"google.golang.org/grpc"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
)

// Client reaches reco-center over gRPC: routing's feed port.
type Client struct {
	c recocenterv1.RecoCenterServiceClient
}

// NewClient returns a client of the reco-center served on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: recocenterv1.NewRecoCenterServiceClient(conn)}
}

// Feed serves one refresh or history page.
func (c *Client) Feed(ctx context.Context, r feed.Request) (feed.Page, error) {
	resp, err := c.c.Feed(ctx, requestToProto(r))
	if err != nil {
		return feed.Page{}, err
	}
	return feed.Page{IDs: resp.GetArticleIds(), Timestamp: resp.GetTimeStamp(), History: resp.GetHistory()}, nil
}

func requestToProto(r feed.Request) *recocenterv1.FeedRequest {
	sources := make([]recallv1.Source, len(r.Strategy.Recall))
	for i, s := range r.Strategy.Recall {
		sources[i] = recallv1.Source(s)
	}
	return &recocenterv1.FeedRequest{
		UserId:     r.User,
		ChannelId:  r.Channel,
		ArticleNum: int32(r.N),
		TimeStamp:  r.Timestamp,
		Anonymous:  r.Anonymous,
		Strategy: &recocenterv1.Strategy{
			Name:          r.Strategy.Name,
			RecallSources: sources,
			SortModel:     int32(r.Strategy.Sort),
			NewRatio:      r.Strategy.NewRatio,
			HotRatio:      r.Strategy.HotRatio,
		},
	}
}
