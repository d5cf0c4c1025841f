package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/toutiao-reco/toutiao-reco/pkg/gateway"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

// httpAnswer is what an HTTP call got.
type httpAnswer struct {
	code   int
	header http.Header
	body   []byte
	// closed is whether the server closed the connection after the answer
	// (Connection: close, which the client takes out of header).
	closed bool
}

// httpClient is a client of its own per test: no connection is shared with
// another test's server.
func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// call sends body to http://addr+path as a plain HTTP client (curl) would.
func call(t *testing.T, c *http.Client, method, addr, path, contentType, body string) (httpAnswer, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		return httpAnswer{}, err
	}
	defer func() { _ = resp.Body.Close() }() // read whole below: closing loses nothing
	b, err := io.ReadAll(resp.Body)
	return httpAnswer{code: resp.StatusCode, header: resp.Header, body: b, closed: resp.Close}, err
}

func mustCall(t *testing.T, c *http.Client, method, addr, path, contentType, body string) httpAnswer {
	t.Helper()
	a, err := call(t, c, method, addr, path, contentType, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

// compact is b without insignificant space: protojson varies its spacing on
// purpose, so that nobody relies on its bytes.
func compact(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("not JSON: %s: %v", b, err)
	}
	return out.String()
}

// jsonKeys are the keys of a JSON object, sorted.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s: %v", b, err)
	}
	return slices.Sorted(maps.Keys(m))
}

// TestGatewayServesTheSameFeedAsGRPC: two suites on two stores seeded alike
// get the same requests, one over gRPC and one as curl sends them over HTTP;
// every answer is the same message, to the byte of every track string, and
// the JSON has the original field names.
func TestGatewayServesTheSameFeedAsGRPC(t *testing.T) {
	t.Parallel()
	e := embeddedEnv()
	_, grpcClient := e.start(t)
	httpApp, _ := e.start(t)
	c := httpClient(t)

	steps := []struct {
		name string
		ts   int64
		// contentType is what the client sends: curl -d sends a form type.
		contentType string
	}{
		{"first refresh", t0 + 1000, "application/x-www-form-urlencoded"},
		{"second refresh", t0 + 2000, "application/json"},
		{"history page", t0 + 1000, ""},
	}
	for _, st := range steps {
		want := refresh(t, grpcClient, e.user, fixtureChannel, 4, st.ts)
		if len(want.GetRecommends()) == 0 {
			t.Fatalf("%s: the gRPC call served nothing (%v): the comparison would prove little", st.name, want)
		}
		body := fmt.Sprintf(`{"user_id": %q, "channel_id": %d, "article_num": 4, "time_stamp": %d}`, e.user, fixtureChannel, st.ts)
		got := mustCall(t, c, http.MethodPost, httpApp.HTTPAddr(), "/v1/user_recommend", st.contentType, body)
		if got.code != http.StatusOK || got.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: HTTP %d (%s) %s; want 200 application/json", st.name, got.code, got.header.Get("Content-Type"), got.body)
		}
		var tr userreco.Track
		if err := protojson.Unmarshal(got.body, &tr); err != nil {
			t.Fatalf("%s: %s does not parse as a Track: %v", st.name, got.body, err)
		}
		if !proto.Equal(&tr, want) {
			t.Errorf("%s: HTTP served\n%v\nwant what gRPC served\n%v", st.name, &tr, want)
		}
		// The original field names, every field present (an empty exposure
		// on the history page), ids as JSON strings.
		if keys := jsonKeys(t, got.body); !slices.Equal(keys, []string{"exposure", "recommends", "time_stamp"}) {
			t.Errorf("%s: Track keys %v, want exposure, recommends, time_stamp", st.name, keys)
		}
		var raw struct {
			Recommends []struct {
				ArticleID json.RawMessage `json:"article_id"`
				Params    json.RawMessage `json:"params"`
			} `json:"recommends"`
			TimeStamp json.RawMessage `json:"time_stamp"`
		}
		if err := json.Unmarshal(got.body, &raw); err != nil {
			t.Fatal(err)
		}
		if wantID := fmt.Sprintf(`"%d"`, want.GetRecommends()[0].GetArticleId()); string(raw.Recommends[0].ArticleID) != wantID {
			t.Errorf("%s: article_id %s, want %s (an int64 is a JSON string)", st.name, raw.Recommends[0].ArticleID, wantID)
		}
		if keys := jsonKeys(t, raw.Recommends[0].Params); !slices.Equal(keys, []string{"click", "collect", "read", "share"}) {
			t.Errorf("%s: params keys %v, want click, collect, read, share", st.name, keys)
		}
		if wantTS := fmt.Sprintf(`"%d"`, want.GetTimeStamp()); string(raw.TimeStamp) != wantTS {
			t.Errorf("%s: time_stamp %s, want %s", st.name, raw.TimeStamp, wantTS)
		}
	}

	want, err := grpcClient.ArticleRecommend(context.Background(), &userreco.Article{ArticleId: 3000, ArticleNum: 2})
	if err != nil || len(want.GetArticleId()) != 2 {
		t.Fatalf("gRPC article_recommend(3000, 2) = %v, %v; want 2 ids", want, err)
	}
	for _, body := range []string{`{"article_id": 3000, "article_num": 2}`, `{"article_id": "3000", "article_num": 2}`, `{"articleId": "3000", "articleNum": 2}`} {
		got := mustCall(t, c, http.MethodPost, httpApp.HTTPAddr(), "/v1/article_recommend", "application/json", body)
		wantBody := fmt.Sprintf(`{"article_id":["%d","%d"]}`, want.GetArticleId()[0], want.GetArticleId()[1])
		if got.code != http.StatusOK || compact(t, got.body) != wantBody {
			t.Errorf("POST /v1/article_recommend %s = HTTP %d %s; want 200 %s", body, got.code, got.body, wantBody)
		}
	}
}

// TestGatewayRefusesBadInput: what gRPC refuses, HTTP refuses with the mapped
// status and the same google.rpc.Status; what only HTTP can get wrong (the
// body, the method, the path, the size) is refused too.
func TestGatewayRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := embeddedEnv()
	a, grpcClient := e.start(t)
	c := httpClient(t)
	now := time.Now().UnixMilli()
	ctx := context.Background()
	tests := []struct {
		name         string
		method, path string
		body         string
		wantHTTP     int
		wantCode     codes.Code
		wantMessage  string
		// grpc, when set, is the same request over gRPC: its status must be
		// the one HTTP answers with.
		grpc func() error
	}{
		{
			name: "channel out of range", method: http.MethodPost, path: "/v1/user_recommend",
			body:     fmt.Sprintf(`{"user_id": "U1", "channel_id": 99, "article_num": 5, "time_stamp": %d}`, now),
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMessage: "channel_id must be 0..24, got 99",
			grpc: func() error {
				_, err := grpcClient.UserRecommend(ctx, &userreco.User{UserId: "U1", ChannelId: 99, ArticleNum: 5, TimeStamp: now})
				return err
			},
		},
		{
			name: "time stamp in seconds", method: http.MethodPost, path: "/v1/user_recommend",
			body:     `{"user_id": "U1", "channel_id": 1, "article_num": 5, "time_stamp": 1733100000}`,
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMessage: "not seconds",
			grpc: func() error {
				_, err := grpcClient.UserRecommend(ctx, &userreco.User{UserId: "U1", ChannelId: 1, ArticleNum: 5, TimeStamp: 1733100000})
				return err
			},
		},
		{
			name: "no article_num", method: http.MethodPost, path: "/v1/user_recommend",
			body:     fmt.Sprintf(`{"user_id": "U1", "channel_id": 1, "time_stamp": %d}`, now),
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMessage: "article_num must be 1..100, got 0",
			grpc: func() error {
				_, err := grpcClient.UserRecommend(ctx, &userreco.User{UserId: "U1", ChannelId: 1, TimeStamp: now})
				return err
			},
		},
		{
			name: "article id not positive", method: http.MethodPost, path: "/v1/article_recommend",
			body:     `{"article_id": 0, "article_num": 5}`,
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMessage: "article_id must be positive, got 0",
			grpc: func() error {
				_, err := grpcClient.ArticleRecommend(ctx, &userreco.Article{ArticleId: 0, ArticleNum: 5})
				return err
			},
		},
		{
			name: "unknown article", method: http.MethodPost, path: "/v1/article_recommend",
			body:     `{"article_id": 999999, "article_num": 5}`,
			wantHTTP: http.StatusNotFound, wantCode: codes.NotFound, wantMessage: "article_id 999999 is unknown",
			grpc: func() error {
				_, err := grpcClient.ArticleRecommend(ctx, &userreco.Article{ArticleId: 999999, ArticleNum: 5})
				return err
			},
		},
		{
			name: "body not JSON", method: http.MethodPost, path: "/v1/user_recommend", body: `{"user_id": `,
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument,
		},
		{
			name: "misspelt field", method: http.MethodPost, path: "/v1/user_recommend",
			body:     fmt.Sprintf(`{"userid": "U1", "channel_id": 1, "article_num": 5, "time_stamp": %d}`, now),
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMessage: "userid",
		},
		{
			name: "wrong type", method: http.MethodPost, path: "/v1/user_recommend",
			body:     fmt.Sprintf(`{"user_id": "U1", "channel_id": "one", "article_num": 5, "time_stamp": %d}`, now),
			wantHTTP: http.StatusBadRequest, wantCode: codes.InvalidArgument, wantMessage: `"one"`,
		},
		{
			name: "body too large", method: http.MethodPost, path: "/v1/user_recommend",
			body:     `{"user_id": "` + strings.Repeat("x", gateway.MaxBodyBytes) + `"}`,
			wantHTTP: http.StatusRequestEntityTooLarge, wantCode: codes.InvalidArgument, wantMessage: "over the limit",
		},
		{
			name: "GET", method: http.MethodGet, path: "/v1/user_recommend",
			wantHTTP: http.StatusMethodNotAllowed, wantCode: codes.Unimplemented, wantMessage: "use POST",
		},
		{
			name: "unknown path", method: http.MethodPost, path: "/v1/user_recommends", body: `{}`,
			wantHTTP: http.StatusNotFound, wantCode: codes.NotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustCall(t, c, tt.method, a.HTTPAddr(), tt.path, "application/json", tt.body)
			var st struct {
				Code    codes.Code `json:"code"`
				Message string     `json:"message"`
			}
			if err := json.Unmarshal(got.body, &st); err != nil {
				t.Fatalf("HTTP %d body %s is not a status: %v", got.code, got.body, err)
			}
			if got.code != tt.wantHTTP || st.Code != tt.wantCode || !strings.Contains(st.Message, tt.wantMessage) {
				t.Errorf("HTTP %d %s; want %d with code %d and a message containing %q", got.code, got.body, tt.wantHTTP, tt.wantCode, tt.wantMessage)
			}
			if tt.method == http.MethodGet && got.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", got.header.Get("Allow"))
			}
			if tt.grpc != nil {
				if s := status.Convert(tt.grpc()); s.Code() != st.Code || s.Message() != st.Message {
					t.Errorf("HTTP answered %d %q; gRPC answers %v %q for the same request", st.Code, st.Message, s.Code(), s.Message())
				}
			}
		})
	}
}

// TestGatewayCallsPassTheServer: an HTTP call is a call of the gRPC server,
// counted in its metrics; it is served through the lame duck, with the
// connection closed after it so that clients move away, and refused once the
// process stopped.
func TestGatewayCallsPassTheServer(t *testing.T) {
	const lameDuck = 500 * time.Millisecond
	cfg := testConfig(t)
	cfg.Server.LameDuck = lameDuck
	a, _, stop := start(t, cfg, []string{Routing})
	c := httpClient(t)
	// An empty user_id is answered by routing alone (an empty track).
	body := fmt.Sprintf(`{"user_id": "", "channel_id": 1, "article_num": 1, "time_stamp": %d}`, time.Now().UnixMilli())
	post := func() (httpAnswer, error) {
		return call(t, c, http.MethodPost, a.HTTPAddr(), "/v1/user_recommend", "application/json", body)
	}
	got, err := post()
	if err != nil || got.code != http.StatusOK || compact(t, got.body) != `{"exposure":"","recommends":[],"time_stamp":"0"}` {
		t.Fatalf("POST = %v, HTTP %d %s; want 200 and the empty track with every field", err, got.code, got.body)
	}
	if got.closed {
		t.Error("a call before the drain closed its connection")
	}
	if h := mustCall(t, c, http.MethodGet, a.HTTPAddr(), "/healthz", "", ""); h.code != http.StatusOK || !strings.Contains(string(h.body), "SERVING") {
		t.Errorf("GET /healthz = HTTP %d %s; want 200 SERVING", h.code, h.body)
	}
	metrics := mustCall(t, c, http.MethodGet, a.MetricsAddr(), "/metrics", "", "")
	if line := `reco_grpc_server_handled_total{grpc_code="OK",grpc_method="user_recommend",grpc_service="UserRecommend",grpc_type="unary"} 1`; !strings.Contains(string(metrics.body), line) {
		t.Errorf("/metrics after one HTTP call lacks %s", line)
	}

	begin := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	// The lame duck: /healthz turns 503 while calls are still served, each
	// telling its client to reconnect.
	for {
		h, err := call(t, c, http.MethodGet, a.HTTPAddr(), "/healthz", "", "")
		if err == nil && h.code == http.StatusServiceUnavailable {
			break
		}
		if time.Since(begin) > lameDuck {
			t.Fatalf("/healthz = %v, %v at the end of the lame duck; want 503", h.code, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err = post()
	if err != nil || got.code != http.StatusOK || !got.closed {
		t.Errorf("POST in the lame duck = %v, HTTP %d, connection closed %v; want 200 with Connection: close", err, got.code, got.closed)
	}
	if took := time.Since(begin); took >= lameDuck {
		t.Fatalf("the calls took %v, longer than the lame duck: the test proves nothing", took)
	}

	if err := <-errc; err != nil {
		t.Errorf("Run after drain: %v", err)
	}
	if took := time.Since(begin); took < lameDuck {
		t.Errorf("Run returned after %v, within the lame duck (%v)", took, lameDuck)
	}
	if _, err := post(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("POST after the stop: %v, want connection refused", err)
	}
}

// TestGatewayListener: the gateway listens where server.http_addr says, in a
// process that runs routing only, and nowhere when the key is empty.
func TestGatewayListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.Server.HTTPAddr = ""
	if a, _, _ := start(t, cfg, []string{Routing}); a.HTTPAddr() != "" {
		t.Errorf("with server.http_addr empty the gateway listens on %s", a.HTTPAddr())
	}
	cfg = testConfig(t)
	if a, _, _ := start(t, cfg, []string{Recall}); a.HTTPAddr() != "" {
		t.Errorf("a recall process serves an HTTP gateway on %s; only routing has HTTP routes", a.HTTPAddr())
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }() // held only to keep its port taken
	cfg = testConfig(t)
	cfg.Server.HTTPAddr = taken.Addr().String()
	if _, err := New(context.Background(), cfg, zap.NewNop(), []string{Routing}); err == nil || !strings.Contains(err.Error(), "server.http_addr") {
		t.Errorf("New with server.http_addr taken: %v, want an error naming the key", err)
	}
}
