package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

// rawCodec puts message bodies on the wire as they are: a client that can send
// bytes no protobuf encoder would.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return proto.Name }

// TestMalformedRequestsAreInvalidArgument: a body that does not parse is the
// caller's mistake, on the public API and on every internal service alike.
func TestMalformedRequestsAreInvalidArgument(t *testing.T) {
	_, conn, _ := start(t, testConfig(t), order)
	ctx := context.Background()
	garbage := []byte{0xff, 0xff, 0xff, 0xff}
	// Field 1 is user_id, a proto3 string, in each of these requests.
	badUTF8 := []byte{0x0a, 0x02, 0xff, 0xfe}
	for _, method := range []string{
		"/UserRecommend/user_recommend",
		"/UserRecommend/article_recommend",
		"/reco.recocenter.v1.RecoCenterService/Feed",
		"/reco.recall.v1.RecallService/Recall",
		"/reco.sort.v1.SortService/Rank",
		"/reco.cache.v1.CacheService/Take",
	} {
		for name, body := range map[string][]byte{"garbage": garbage, "invalid UTF-8": badUTF8} {
			if method == "/UserRecommend/article_recommend" && name == "invalid UTF-8" {
				continue // Article has no string field
			}
			var out []byte
			err := conn.Invoke(ctx, method, body, &out, grpc.ForceCodecV2(rawCodec{}))
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "malformed request") {
				t.Errorf("%s with %s: %v, want InvalidArgument: malformed request", method, name, err)
			}
		}
	}
	// A well-formed call still works (an empty user_id needs no peer).
	if _, err := userreco.NewUserRecommendClient(conn).UserRecommend(ctx, &userreco.User{ChannelId: 1, ArticleNum: 1, TimeStamp: time.Now().UnixMilli()}); err != nil {
		t.Errorf("well-formed user_recommend after the malformed ones: %v", err)
	}
}
