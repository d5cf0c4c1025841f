package app

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// testConfig is the default configuration on free ports and a fresh embedded file.
func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Server.GRPCAddr = "127.0.0.1:0"
	cfg.Server.MetricsAddr = "127.0.0.1:0"
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Storage.Embedded.Path = filepath.Join(t.TempDir(), "reco.db")
	cfg.Storage.Log.Embedded.Dir = filepath.Join(t.TempDir(), "log")
	cfg.Storage.Embedded.NoSync = true
	cfg.Server.DrainTimeout = time.Second
	// A short lame duck: every test's stop goes through it, quickly.
	cfg.Server.LameDuck = 20 * time.Millisecond
	return cfg
}

// start runs an App for targets (built with opts) until the test ends, and
// returns it with a connection to it and a function that stops it and waits
// for Run to return.
func start(t *testing.T, cfg config.Config, targets []string, opts ...Option) (*App, *grpc.ClientConn, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := zap.NewNop()
	if os.Getenv("RECOTEST_LOG") == "1" { // a development log of the suite, for debugging
		log, _ = zap.NewDevelopment()
	}
	a, err := New(ctx, cfg, log, targets, opts...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() {
		conn.Close()
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a, conn, stop
}

func seedSimilar(t *testing.T, cfg config.Config, article int64, neighbours []storage.Scored) {
	t.Helper()
	seedRecords(t, cfg, storage.Neighbours{Article: article, Similar: neighbours})
}

// seedRecords loads records into cfg's tables, as a build would.
func seedRecords(t *testing.T, cfg config.Config, records ...storage.Record) {
	t.Helper()
	ctx := context.Background()
	stores, cleanup, err := OpenStores(ctx, cfg.Storage, TablesRole, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	if err := stores.Tables.Load(ctx, records); err != nil {
		t.Fatal(err)
	}
}

func TestAllInOneServesEveryServiceWithHealth(t *testing.T) {
	cfg := testConfig(t)
	_, conn, _ := start(t, cfg, order)
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "UserRecommend", "reco.recocenter.v1.RecoCenterService", "reco.recall.v1.RecallService", "reco.sort.v1.SortService", "reco.cache.v1.CacheService"} {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
}

func TestArticleRecommendAcrossServices(t *testing.T) {
	cfg := testConfig(t)
	seedSimilar(t, cfg, 42, []storage.Scored{{ID: 7, Score: 0.3}, {ID: 8, Score: 0.9}, {ID: 9, Score: 0.6}})
	// 43 is known (a build wrote its features) but has no neighbours; 44 is
	// unknown.
	seedRecords(t, cfg, storage.ArticleVector{Article: 43, Vector: []float64{1, 0.5}})
	_, conn, _ := start(t, cfg, order)
	client := userreco.NewUserRecommendClient(conn)

	got, err := client.ArticleRecommend(context.Background(), &userreco.Article{ArticleId: 42, ArticleNum: 2})
	if err != nil || !slices.Equal(got.GetArticleId(), []int64{8, 9}) {
		t.Errorf("article_recommend(42, 2) = %v, %v; want [8 9]", got.GetArticleId(), err)
	}
	got, err = client.ArticleRecommend(context.Background(), &userreco.Article{ArticleId: 43, ArticleNum: 2})
	if err != nil || len(got.GetArticleId()) != 0 {
		t.Errorf("article_recommend of an article without neighbours = %v, %v; want empty", got.GetArticleId(), err)
	}
	got, err = client.ArticleRecommend(context.Background(), &userreco.Article{ArticleId: 44, ArticleNum: 2})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "article_id 44 is unknown") {
		t.Errorf("article_recommend of an unknown article = %v, %v; want NotFound naming it", got.GetArticleId(), err)
	}

	for _, bad := range []*userreco.Article{{ArticleId: 42, ArticleNum: 0}, {ArticleId: 42, ArticleNum: -1}, {ArticleId: 42, ArticleNum: 101}, {ArticleId: 0, ArticleNum: 3}} {
		_, err := client.ArticleRecommend(context.Background(), bad)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("article_recommend(%v) code = %v, want InvalidArgument", bad, status.Code(err))
		}
	}
}

// TestDrainReportsNotServingFirst: on SIGTERM health turns NOT_SERVING while
// calls are still served, for the lame duck; only then does the server stop.
func TestDrainReportsNotServingFirst(t *testing.T) {
	const lameDuck = 500 * time.Millisecond
	cfg := testConfig(t)
	cfg.Server.LameDuck = lameDuck
	a, conn, stop := start(t, cfg, []string{Routing})
	ctx := context.Background()
	// An empty user_id is answered by routing alone (an empty track): a real
	// call through the whole server that needs no peer.
	call := func(c *grpc.ClientConn) error {
		_, err := userreco.NewUserRecommendClient(c).UserRecommend(ctx, &userreco.User{ChannelId: 1, ArticleNum: 1, TimeStamp: time.Now().UnixMilli()})
		return err
	}
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first health status = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	begin := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	resp, err := watch.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("status on drain = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	// The lame duck: NOT_SERVING, and calls still succeed, also on a connection
	// opened now.
	if err := call(conn); err != nil {
		t.Errorf("call in the lame duck: %v, want it served", err)
	}
	fresh, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := call(fresh); err != nil {
		t.Errorf("call on a new connection in the lame duck: %v, want it served", err)
	}
	if took := time.Since(begin); took >= lameDuck {
		t.Fatalf("the calls took %v, longer than the lame duck: the test proves nothing", took)
	}
	select {
	case err := <-errc:
		t.Fatalf("Run returned within the lame duck: %v", err)
	default:
	}

	// After it the server stops: Run returns, the Watch ends, calls fail.
	if err := <-errc; err != nil {
		t.Errorf("Run after drain: %v", err)
	}
	if took := time.Since(begin); took < lameDuck {
		t.Errorf("Run returned after %v, within the lame duck (%v)", took, lameDuck)
	}
	if resp, err := watch.Recv(); err == nil {
		t.Errorf("health Watch after the stop = %v, want the stream ended", resp.GetStatus())
	}
	if err := call(fresh); err == nil {
		t.Error("a call after the stop was served")
	}
}

func TestRoutingAloneDialsPeersOverTheNetwork(t *testing.T) {
	recallCfg := testConfig(t)
	seedSimilar(t, recallCfg, 5, []storage.Scored{{ID: 6, Score: 1}})
	recallApp, _, _ := start(t, recallCfg, []string{Recall})

	routingCfg := testConfig(t)
	routingCfg.Clients.Recall.Addr = recallApp.GRPCAddr()
	_, conn, _ := start(t, routingCfg, []string{Routing})
	got, err := userreco.NewUserRecommendClient(conn).ArticleRecommend(context.Background(), &userreco.Article{ArticleId: 5, ArticleNum: 3})
	if err != nil || !slices.Equal(got.GetArticleId(), []int64{6}) {
		t.Errorf("article_recommend through a remote recall = %v, %v; want [6]", got.GetArticleId(), err)
	}
}

func TestParseTargets(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "all", want: order},
		{in: "routing", want: []string{Routing}},
		{in: "routing, recall,routing", want: []string{Routing, Recall}},
		{in: "router", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseTargets(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseTargets(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // only its port was wanted
	return l.Addr().String()
}

func TestUndeclaredPeerIsAStartupError(t *testing.T) {
	d := &deps{module: Routing, declared: modules[Routing].peers}
	d.peer(RecoCenter) // declared
	if d.err != nil {
		t.Fatalf("declared peer: %v", d.err)
	}
	d.peer(Cache) // routing never calls the cache
	if d.err == nil || !strings.Contains(d.err.Error(), "routing calls cache") {
		t.Errorf("undeclared peer: err = %v, want one naming routing and cache", d.err)
	}
}

func TestEveryModuleWiresOnlyDeclaredPeers(t *testing.T) {
	// Start every target alone: a module that calls a peer it does not declare
	// fails New, naming it.
	for _, target := range order {
		t.Run(target, func(t *testing.T) {
			start(t, testConfig(t), []string{target})
		})
	}
}
