package sort

import (
	"context"

	"google.golang.org/grpc"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
)

// Client reaches sort over gRPC: reco-center's ranker port.
type Client struct{ c sortv1.SortServiceClient }

// NewClient returns a client of the sort service served on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: sortv1.NewSortServiceClient(conn)}
}

// Rank orders ids by model's predicted click-through rate for the reader.
func (c *Client) Rank(ctx context.Context, user string, channel int32, model feed.Model, ids []int64) ([]int64, error) {
	resp, err := c.c.Rank(ctx, &sortv1.RankRequest{UserId: user, ChannelId: channel, Model: int32(model), ArticleIds: ids})
	if err != nil {
		return nil, err
	}
	return resp.GetArticleIds(), nil
}
