package recall

import (
	"context"

	"google.golang.org/grpc"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
)

// Client reaches recall over gRPC: reco-center's recaller port and routing's
// similar-articles port.
type Client struct{ c recallv1.RecallServiceClient }

// NewClient returns a client of the recall service served on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{c: recallv1.NewRecallServiceClient(conn)}
}

// Recall returns the merged candidates of sources for the reader's channel and
// the recall runs it read.
func (c *Client) Recall(ctx context.Context, user string, channel int32, sources []feed.Source) ([]feed.Candidate, []feed.ReadRuns, error) {
	srcs := make([]recallv1.Source, len(sources))
	for i, s := range sources {
		srcs[i] = recallv1.Source(s)
	}
	resp, err := c.c.Recall(ctx, &recallv1.RecallRequest{UserId: user, ChannelId: channel, Sources: srcs})
	if err != nil {
		return nil, nil, err
	}
	out := make([]feed.Candidate, len(resp.GetCandidates()))
	for i, cand := range resp.GetCandidates() {
		out[i] = feed.Candidate{ID: cand.GetArticleId(), Source: feed.Source(cand.GetSource())}
	}
	return out, readFromProto(resp.GetRead()), nil
}

// Consume deletes the recall runs a Recall read, once its candidates are queued.
func (c *Client) Consume(ctx context.Context, user string, channel int32, read []feed.ReadRuns) error {
	if len(read) == 0 {
		return nil
	}
	_, err := c.c.Consume(ctx, &recallv1.ConsumeRequest{UserId: user, ChannelId: channel, Read: readToProto(read)})
	return err
}

// Similar returns the n articles most similar to article.
func (c *Client) Similar(ctx context.Context, article int64, n int) ([]int64, error) {
	resp, err := c.c.Similar(ctx, &recallv1.SimilarRequest{ArticleId: article, N: int32(n)})
	if err != nil {
		return nil, err
	}
	return resp.GetArticleIds(), nil
}
