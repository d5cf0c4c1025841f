package recocenter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
)

func protoRequest(ts int64) *recocenterv1.FeedRequest {
	return &recocenterv1.FeedRequest{
		UserId: "u1", ChannelId: 3, ArticleNum: 2, TimeStamp: ts,
		Strategy: &recocenterv1.Strategy{
			Name:          "Algo-2",
			RecallSources: []recallv1.Source{recallv1.Source(feed.SourceALS), recallv1.Source(feed.SourceNew)},
			SortModel:     201,
			NewRatio:      0.5,
		},
	}
}

// TestServerFeed covers the gRPC adapter: the request and page mapping, and
// the status codes (InvalidArgument for the caller's mistakes, a peer's code
// kept, Unavailable otherwise).
func TestServerFeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req       func() *recocenterv1.FeedRequest
		recordErr error // what the served log and history Record both fail with
		popErr    error // what popular fails with
		want      *recocenterv1.FeedResponse
		wantCode  codes.Code
	}{
		{
			name: "refresh maps the strategy and the page",
			req:  func() *recocenterv1.FeedRequest { return protoRequest(400) },
			// Ranked [12 11 10], new 10 mixed in first at ratio 0.5.
			want: &recocenterv1.FeedResponse{ArticleIds: []int64{10, 12}, TimeStamp: 300},
		},
		{
			name: "history page",
			req:  func() *recocenterv1.FeedRequest { return protoRequest(300) },
			want: &recocenterv1.FeedResponse{ArticleIds: []int64{3, 4}, TimeStamp: 100, History: true},
		},
		{
			name:     "invalid request is InvalidArgument",
			req:      func() *recocenterv1.FeedRequest { r := protoRequest(400); r.ArticleNum = 0; return r },
			wantCode: codes.InvalidArgument,
		},
		{
			name:     "missing strategy is InvalidArgument",
			req:      func() *recocenterv1.FeedRequest { r := protoRequest(400); r.Strategy = nil; return r },
			wantCode: codes.InvalidArgument,
		},
		{
			name:      "a record error that is a status DeadlineExceeded stays DeadlineExceeded",
			req:       func() *recocenterv1.FeedRequest { return protoRequest(400) },
			recordErr: fmt.Errorf("hbase: %w", status.Error(codes.DeadlineExceeded, "thrift gateway slow")),
			wantCode:  codes.DeadlineExceeded,
		},
		{
			name:      "a record error that is a context deadline is DeadlineExceeded",
			req:       func() *recocenterv1.FeedRequest { return protoRequest(400) },
			recordErr: fmt.Errorf("hbase: %w", context.DeadlineExceeded),
			wantCode:  codes.DeadlineExceeded,
		},
		{
			name:      "a plain record error is Unavailable",
			req:       func() *recocenterv1.FeedRequest { return protoRequest(400) },
			recordErr: errors.New("connection refused"),
			wantCode:  codes.Unavailable,
		},
		{
			name: "anonymous reader with popular down is Unavailable",
			req: func() *recocenterv1.FeedRequest {
				r := protoRequest(400)
				r.UserId, r.Anonymous = "anony", true
				return r
			},
			popErr:   errors.New("redis down"),
			wantCode: codes.Unavailable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			e.history.add("u1", 3, 100, 1, 2)
			e.history.add("u1", 3, 300, 3, 4)
			e.recall.cands[3] = slices.Concat(candidates(feed.SourceALS, 11, 12), candidates(feed.SourceNew, 10))
			if tt.recordErr != nil {
				// Both the served log and history refuse the page: nothing
				// would remember it, so the refresh fails.
				e.served.failOn("Append", fault{err: tt.recordErr})
				e.history.failOn("Record", fault{err: tt.recordErr})
			}
			if tt.popErr != nil {
				e.popular.failOn("Popular", fault{err: tt.popErr})
			}
			got, err := NewServer(e.center(t)).Feed(testCtx(t), tt.req())
			if tt.wantCode != codes.OK {
				if s, _ := status.FromError(err); s.Code() != tt.wantCode || got != nil {
					t.Fatalf("Feed = %v, %v; want code %v", got, err, tt.wantCode)
				}
				if tt.recordErr != nil && !strings.HasPrefix(status.Convert(err).Message(), "feed: ") {
					t.Errorf("Feed error message %q, want it prefixed %q", status.Convert(err).Message(), "feed: ")
				}
				return
			}
			if err != nil {
				t.Fatalf("Feed: %v", err)
			}
			if !slices.Equal(got.GetArticleIds(), tt.want.GetArticleIds()) || got.GetTimeStamp() != tt.want.GetTimeStamp() || got.GetHistory() != tt.want.GetHistory() {
				t.Errorf("Feed = %v, want %v", got, tt.want)
			}
			if !tt.want.GetHistory() {
				if want := []feed.Source{feed.SourceALS, feed.SourceNew}; !slices.Equal(e.recall.sources[0], want) {
					t.Errorf("Recall sources = %v, want %v", e.recall.sources[0], want)
				}
				if e.sort.models[0] != 201 {
					t.Errorf("Rank model = %d, want 201", e.sort.models[0])
				}
			}
		})
	}
}

// TestClientRoundTrip serves a Server over an in-memory gRPC connection and
// reaches it with Client: the request and page survive the wire both ways, and
// the server's status code reaches the caller.
func TestClientRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.history.add("u1", 3, 100, 1, 2)
	e.history.add("u1", 3, 300, 3, 4)
	e.recall.cands[3] = slices.Concat(candidates(feed.SourceALS, 11, 12), candidates(feed.SourceNew, 10))

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	recocenterv1.RegisterRecoCenterServiceServer(srv, NewServer(e.center(t)))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := NewClient(conn)

	r := refreshOf(3, 2, 400)
	r.Strategy = feed.Strategy{Name: "Algo-2", Recall: []feed.Source{feed.SourceALS, feed.SourceNew}, Sort: 201, NewRatio: 0.5, HotRatio: 0.25}
	tests := []struct {
		name     string
		req      feed.Request
		want     feed.Page
		wantCode codes.Code
	}{
		{name: "refresh", req: r, want: feed.Page{IDs: []int64{10, 12}, Timestamp: 300}},
		{name: "history page", req: func() feed.Request { h := r; h.Timestamp = 300; return h }(), want: feed.Page{IDs: []int64{3, 4}, Timestamp: 100, History: true}},
		{name: "invalid request keeps InvalidArgument", req: func() feed.Request { b := r; b.N = feed.MaxArticles + 1; return b }(), wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		// Sequential: the cases share the server and the reader's history.
		got, err := client.Feed(testCtx(t), tt.req)
		if tt.wantCode != codes.OK {
			if status.Code(err) != tt.wantCode {
				t.Errorf("%s: Feed err = %v, want code %v", tt.name, err, tt.wantCode)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: Feed: %v", tt.name, err)
		}
		if !slices.Equal(got.IDs, tt.want.IDs) || got.Timestamp != tt.want.Timestamp || got.History != tt.want.History {
			t.Errorf("%s: Feed = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if got := requestFromProto(requestToProto(r)); !requestsEqual(got, r) {
		t.Errorf("requestFromProto(requestToProto(r)) = %+v, want %+v", got, r)
	}
}

func requestsEqual(a, b feed.Request) bool {
	return a.User == b.User && a.Channel == b.Channel && a.N == b.N && a.Timestamp == b.Timestamp && a.Anonymous == b.Anonymous &&
		a.Strategy.Name == b.Strategy.Name && slices.Equal(a.Strategy.Recall, b.Strategy.Recall) && a.Strategy.Sort == b.Strategy.Sort &&
		a.Strategy.NewRatio == b.Strategy.NewRatio && a.Strategy.HotRatio == b.Strategy.HotRatio
}

// TestConfigValidate covers the config keys' bounds.
// valid is a valid Config changed by change.
func valid(change func(*Config)) Config {
	c := Config{FillTimeout: time.Second, PopularNum: 100, PopularScan: 1000, SeenTTL: time.Hour, HistoryTimeout: time.Second}
	change(&c)
	return c
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", valid(func(*Config) {}), ""},
		{"largest popular_num", valid(func(c *Config) { c.PopularNum = feed.MaxArticles }), ""},
		{"zero fill_timeout", valid(func(c *Config) { c.FillTimeout = 0 }), "fill_timeout"},
		{"negative fill_timeout", valid(func(c *Config) { c.FillTimeout = -time.Second }), "fill_timeout"},
		{"zero popular_num", valid(func(c *Config) { c.PopularNum = 0 }), "popular_num"},
		{"popular_num over MaxArticles", valid(func(c *Config) { c.PopularNum = feed.MaxArticles + 1 }), "popular_num"},
		{"popular_scan below popular_num", valid(func(c *Config) { c.PopularScan = 99 }), "popular_scan"},
		{"popular_scan over its bound", valid(func(c *Config) { c.PopularScan = maxPopular + 1 }), "popular_scan"},
		{"zero seen_ttl", valid(func(c *Config) { c.SeenTTL = 0 }), "seen_ttl"},
		{"zero history_timeout", valid(func(c *Config) { c.HistoryTimeout = 0 }), "history_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate = %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestNewRegistersMetricsOnce: a second Center on the same registry is refused
// rather than sharing (or panicking on) its metrics.
func TestNewRegistersMetricsOnce(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	cfg := Config{FillTimeout: time.Second, PopularNum: 10}
	if _, err := New(cfg, Ports{}, zap.NewNop(), reg); err != nil {
		t.Fatalf("first New: %v", err)
	}
	if _, err := New(cfg, Ports{}, zap.NewNop(), reg); err == nil {
		t.Errorf("second New on the same registry: err = nil, want a registration error")
	}
}
