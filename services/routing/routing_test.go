package routing

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

// fakeFeeder records the requests routing passes on and serves a fixed page.
type fakeFeeder struct{ got []feed.Request }

func (f *fakeFeeder) Feed(_ context.Context, r feed.Request) (feed.Page, error) {
	f.got = append(f.got, r)
	return feed.Page{IDs: []int64{1, 2}}, nil
}

func testConfig() Config {
	return Config{MaxArticleNum: 100, AnonymousUsers: []string{"anony"}, StrategiesReload: time.Second, MaxFutureSkew: 10 * time.Minute}
}

func newTestServer(t *testing.T, now time.Time) (*Server, *fakeFeeder) {
	t.Helper()
	f := &fakeFeeder{}
	s, err := New(testConfig(), Ports{Feed: f}, zap.NewNop(), prometheus.NewRegistry(), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

func TestTimeStamps(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	ms := now.UnixMilli()
	skew := testConfig().MaxFutureSkew.Milliseconds()
	tests := []struct {
		name string
		ts   int64
		// want is a part of the refusal's message; empty: accepted.
		want string
	}{
		{"now", ms, ""},
		{"an hour ago", ms - time.Hour.Milliseconds(), ""},
		{"a client clock ahead by the allowed skew", ms + skew, ""},
		{"2000-01-01 exactly", minTimestamp, ""},
		{"just beyond the skew", ms + skew + 1, "is more than 10m0s ahead of the server's clock"},
		{"tomorrow", ms + 24*time.Hour.Milliseconds(), "ahead of the server's clock"},
		{"year 3000", 32503680000000, "time_stamp 32503680000000 (3000-01-01T00:00:00Z) is more than 10m0s ahead"},
		{"2^63-1", math.MaxInt64, "ahead of the server's clock"},
		{"seconds", 1733100000, "time_stamp 1733100000 is before 2000-01-01: it must be milliseconds since the epoch"},
		{"just before 2000", minTimestamp - 1, "is before 2000-01-01"},
		{"1 ms", 1, "is before 2000-01-01"},
		{"zero", 0, "time_stamp must be a positive time"},
		{"negative", -10, "time_stamp must be a positive time"},
		{"-2^63", math.MinInt64, "time_stamp must be a positive time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f := newTestServer(t, now)
			_, err := s.UserRecommend(context.Background(), &userreco.User{UserId: "u1", ChannelId: 1, ArticleNum: 2, TimeStamp: tt.ts})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("time_stamp %d: %v, want it served", tt.ts, err)
				}
				if len(f.got) != 1 || f.got[0].Timestamp != tt.ts {
					t.Errorf("reco-center got %+v, want one request at %d", f.got, tt.ts)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tt.want) {
				t.Errorf("time_stamp %d: %v, want InvalidArgument containing %q", tt.ts, err, tt.want)
			}
			if len(f.got) != 0 {
				t.Errorf("a refused request reached reco-center: %+v", f.got)
			}
		})
	}
}

func TestTheClockMovesTheBound(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	clock := now
	f := &fakeFeeder{}
	s, err := New(testConfig(), Ports{Feed: f}, zap.NewNop(), prometheus.NewRegistry(), WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	ahead := now.Add(time.Hour).UnixMilli()
	req := &userreco.User{UserId: "u1", ChannelId: 1, ArticleNum: 2, TimeStamp: ahead}
	if _, err := s.UserRecommend(context.Background(), req); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an hour ahead: %v, want InvalidArgument", err)
	}
	clock = now.Add(55 * time.Minute) // the server's clock catches up
	if _, err := s.UserRecommend(context.Background(), req); err != nil {
		t.Errorf("five minutes ahead: %v, want it served", err)
	}
}

func TestValidateMaxFutureSkew(t *testing.T) {
	cfg := testConfig()
	cfg.MaxFutureSkew = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "routing.max_future_skew") {
		t.Errorf("Validate with max_future_skew 0 = %v, want an error naming routing.max_future_skew", err)
	}
}

// fakeSimilar answers every similar-articles call with ids and err.
type fakeSimilar struct {
	ids []int64
	err error
}

func (f fakeSimilar) Similar(context.Context, int64, int) ([]int64, error) { return f.ids, f.err }

// TestArticleRecommendUnknownArticle: recall's NOT_FOUND (no build wrote the
// article) reaches the caller; any other failure still renders the page with
// no similar articles.
func TestArticleRecommendUnknownArticle(t *testing.T) {
	tests := []struct {
		name    string
		similar fakeSimilar
		want    []int64
		code    codes.Code
	}{
		{"neighbours", fakeSimilar{ids: []int64{7, 8}}, []int64{7, 8}, codes.OK},
		{"known without neighbours", fakeSimilar{}, nil, codes.OK},
		{"unknown article", fakeSimilar{err: status.Error(codes.NotFound, "article_id 9 is unknown")}, nil, codes.NotFound},
		{"recall down", fakeSimilar{err: status.Error(codes.Unavailable, "connection refused")}, nil, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(testConfig(), Ports{Feed: &fakeFeeder{}, Similar: tt.similar}, zap.NewNop(), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.ArticleRecommend(context.Background(), &userreco.Article{ArticleId: 9, ArticleNum: 5})
			if status.Code(err) != tt.code || !slices.Equal(got.GetArticleId(), tt.want) {
				t.Errorf("ArticleRecommend = %v, %v; want %v, %v", got.GetArticleId(), err, tt.want, tt.code)
			}
			if tt.code == codes.NotFound && !strings.Contains(status.Convert(err).Message(), "article_id 9 is unknown") {
				t.Errorf("message %q does not say which article is unknown", status.Convert(err).Message())
			}
		})
	}
}
