package cache

import (
	"context"

	"google.golang.org/grpc"

	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
)

// Client reaches a cache over gRPC (in all-in-one mode over an in-process
// connection): reco-center's cache port.
type Client struct{ c cachev1.CacheServiceClient }

// NewClient returns a client of the cache served on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: cachev1.NewCacheServiceClient(conn)}
}

// Pop takes up to n of the reader's cached ids in ranked order.
func (c *Client) Pop(ctx context.Context, user string, channel int32, n int) ([]int64, error) {
	resp, err := c.c.Pop(ctx, &cachev1.PopRequest{UserId: user, ChannelId: channel, N: int32(n)})
	if err != nil {
		return nil, err
	}
	return resp.GetArticleIds(), nil
}

// Store keeps ranked ids (best first) for the reader's later refreshes.
func (c *Client) Store(ctx context.Context, user string, channel int32, ranked []int64) error {
	_, err := c.c.Store(ctx, &cachev1.StoreRequest{UserId: user, ChannelId: channel, ArticleIds: ranked})
	return err
}
