package cache

import (
	"context"

	"google.golang.org/grpc"

	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Client reaches a cache over gRPC (in all-in-one mode over an in-process
// connection): reco-center's cache port.
type Client struct{ c cachev1.CacheServiceClient }

// NewClient returns a client of the cache served on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: cachev1.NewCacheServiceClient(conn)}
}

// Take starts a refresh at at (0: one under way) and takes up to n of the
// reader's cached ids in ranked order, claimed for them.
func (c *Client) Take(ctx context.Context, user string, channel int32, at int64, n int) (storage.Taken, error) {
	resp, err := c.c.Take(ctx, &cachev1.TakeRequest{UserId: user, ChannelId: channel, N: int32(n), TimeStamp: at})
	if err != nil {
		return storage.Taken{}, err
	}
	if resp.GetUnseeded() {
		return storage.Taken{}, storage.ErrUnseeded
	}
	return storage.Taken{IDs: resp.GetArticleIds(), Last: resp.GetLastTimeStamp(), Older: resp.GetOlder()}, nil
}

// Store keeps ranked ids (best first) for the reader's later refreshes.
func (c *Client) Store(ctx context.Context, user string, channel int32, ranked []int64) error {
	_, err := c.c.Store(ctx, &cachev1.StoreRequest{UserId: user, ChannelId: channel, ArticleIds: ranked})
	return err
}
