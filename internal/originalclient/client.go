// Package originalclient is a client of the public API compiled at run time from
// the original web backend's protobuf, verbatim from DESIGN.md §2.1, with none
// of this project's generated code. Tests use it to prove that an existing
// client works unchanged against routing.
package originalclient

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/bufbuild/protocompile"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Proto is the original file: no package line, lower-case messages and methods.
// `make lint` also runs buf breaking of proto/ against it (WIRE rules), so the
// public API cannot drift from it unnoticed.
//
//go:embed proto/user_reco.proto
var Proto string

// Client calls UserRecommend with dynamic messages built from Proto.
type Client struct {
	conn grpc.ClientConnInterface
	file protoreflect.FileDescriptor
}

// New compiles Proto and returns a client on conn.
func New(conn grpc.ClientConnInterface) (*Client, error) {
	c := protocompile.Compiler{Resolver: &protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"user_reco.proto": Proto}),
	}}
	files, err := c.Compile(context.Background(), "user_reco.proto")
	if err != nil {
		return nil, fmt.Errorf("compile the original proto: %w", err)
	}
	return &Client{conn: conn, file: files[0]}, nil
}

// Item is one served article as the original client sees it.
type Item struct {
	ArticleID                   int64
	Click, Collect, Share, Read string
}

// Track is the original Track message, decoded.
type Track struct {
	Exposure   string
	Recommends []Item
	TimeStamp  int64
}

func (c *Client) message(name string) *dynamicpb.Message {
	return dynamicpb.NewMessage(c.file.Messages().ByName(protoreflect.Name(name)))
}

func set(m *dynamicpb.Message, field string, v protoreflect.Value) {
	m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(field)), v)
}

func get(m protoreflect.Message, field string) protoreflect.Value {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(field)))
}

// UserRecommend calls /UserRecommend/user_recommend.
func (c *Client) UserRecommend(ctx context.Context, user string, channel, articleNum int32, timeStamp int64) (Track, error) {
	req := c.message("User")
	set(req, "user_id", protoreflect.ValueOfString(user))
	set(req, "channel_id", protoreflect.ValueOfInt32(channel))
	set(req, "article_num", protoreflect.ValueOfInt32(articleNum))
	set(req, "time_stamp", protoreflect.ValueOfInt64(timeStamp))
	resp := c.message("Track")
	if err := c.conn.Invoke(ctx, "/UserRecommend/user_recommend", req, resp); err != nil {
		return Track{}, err
	}
	t := Track{Exposure: get(resp, "exposure").String(), TimeStamp: get(resp, "time_stamp").Int()}
	list := get(resp, "recommends").List()
	for i := range list.Len() {
		p1 := list.Get(i).Message()
		p2 := get(p1, "params").Message()
		t.Recommends = append(t.Recommends, Item{
			ArticleID: get(p1, "article_id").Int(),
			Click:     get(p2, "click").String(),
			Collect:   get(p2, "collect").String(),
			Share:     get(p2, "share").String(),
			Read:      get(p2, "read").String(),
		})
	}
	return t, nil
}

// ArticleRecommend calls /UserRecommend/article_recommend.
func (c *Client) ArticleRecommend(ctx context.Context, articleID int64, articleNum int32) ([]int64, error) {
	req := c.message("Article")
	set(req, "article_id", protoreflect.ValueOfInt64(articleID))
	set(req, "article_num", protoreflect.ValueOfInt32(articleNum))
	resp := c.message("Similar")
	if err := c.conn.Invoke(ctx, "/UserRecommend/article_recommend", req, resp); err != nil {
		return nil, err
	}
	var ids []int64
	list := get(resp, "article_id").List()
	for i := range list.Len() {
		ids = append(ids, list.Get(i).Int())
	}
	return ids, nil
}
