package app

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	recocenterv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recocenter/v1"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// suite is the five services split over five processes' worth of Apps, each
// with its own embedded store, listening on free loopback ports with TLS and
// authorizing by mTLS identity, as a production deployment would.
type suite struct {
	ca    *certstest.CA
	leafs map[string]certstest.Leaf // each service's certificate, by service
	dirs  map[string]string         // where each service's certificate files live
	apps  map[string]*App
}

// startSecureSuite seeds the fixture into every process's store (each has its
// own file) and starts cache, recall and sort, then recocenter, then routing
// and nearline.
func startSecureSuite(t *testing.T) *suite {
	t.Helper()
	s := &suite{ca: certstest.NewCA(t, "reco test CA"), leafs: map[string]certstest.Leaf{}, dirs: map[string]string{}, apps: map[string]*App{}}
	models := t.TempDir()
	cfgs := map[string]config.Config{}
	for _, name := range order {
		s.dirs[name] = t.TempDir()
		leaf := s.ca.Leaf(t, name, s.dirs[name])
		s.leafs[name] = leaf
		cfg := testConfig(t)
		cfg.Server.TLS = certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile, ClientCAFile: s.ca.File}
		cfg.Server.Authz.Enabled = true
		cfg.Clients.TLS = certs.Client{Enabled: true, CAFile: s.ca.File, CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}
		cfg.Sort.ModelDir = models
		seedFixture(t, cfg, models)
		cfgs[name] = cfg
	}
	for _, name := range []string{Cache, Recall, Sort, RecoCenter, Routing, Nearline} {
		cfg := cfgs[name]
		for peer, app := range s.apps {
			setPeerAddr(&cfg, peer, app.GRPCAddr())
		}
		s.apps[name], _, _ = start(t, cfg, []string{name})
	}
	return s
}

// seedFixture writes the fixture feed of U1 into cfg's store.
func seedFixture(t *testing.T, cfg config.Config, models string) {
	t.Helper()
	ctx := context.Background()
	st, cleanup, err := OpenStores(ctx, cfg.Storage, TablesRole|SetsRole, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	if err := fixture.Seed(ctx, st.Tables, st.Sets, models, "U1"); err != nil {
		t.Fatal(err)
	}
}

func setPeerAddr(cfg *config.Config, peer, addr string) {
	switch peer {
	case RecoCenter:
		cfg.Clients.RecoCenter.Addr = addr
	case Recall:
		cfg.Clients.Recall.Addr = addr
	case Sort:
		cfg.Clients.Sort.Addr = addr
	case Cache:
		cfg.Clients.Cache.Addr = addr
	}
}

// dial connects to the gRPC port of service with opt as its transport.
func (s *suite) dial(t *testing.T, service string, opt grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.apps[service].GRPCAddr(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// as is TLS that trusts the suite's CA and, unless signer is nil, presents a
// certificate of signer naming caller.
func (s *suite) as(t *testing.T, signer *certstest.CA, caller string) grpc.DialOption {
	t.Helper()
	return grpc.WithTransportCredentials(server.PeerTLS(s.ca.Client(t, signer, caller)))
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestSplitSuiteOverMutualTLS: with mTLS and authorization on, only the
// callers that need a method get it, a forged Store writes nothing, the public
// API is served over TLS and rotated certificates are used without a restart.
func TestSplitSuiteOverMutualTLS(t *testing.T) {
	s := startSecureSuite(t)

	t.Run("a plaintext client to a TLS port fails", func(t *testing.T) {
		for _, svc := range order {
			conn := s.dial(t, svc, grpc.WithTransportCredentials(insecure.NewCredentials()))
			_, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Errorf("plaintext health check of %s: %v, want Unavailable (no TLS, no answer)", svc, err)
			}
		}
	})

	t.Run("a certificate of another CA is refused", func(t *testing.T) {
		conn := s.dial(t, Cache, s.as(t, certstest.NewCA(t, "rogue CA"), RecoCenter))
		_, err := cachev1.NewCacheServiceClient(conn).Take(callCtx(t), &cachev1.TakeRequest{UserId: "U1", ChannelId: 1, N: 1})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("Take with a rogue CA's recocenter certificate: %v, want Unavailable (handshake refused)", err)
		}
	})

	t.Run("a forged Store is refused and writes nothing", func(t *testing.T) {
		forged := &cachev1.StoreRequest{UserId: "victim", ChannelId: 1, ArticleIds: []int64{-1, 0, 999999999, math.MaxInt64}}
		valid := &cachev1.StoreRequest{UserId: "victim", ChannelId: 1, ArticleIds: []int64{999999999, math.MaxInt64}}
		for _, tt := range []struct {
			name  string
			opt   grpc.DialOption
			token string
			want  codes.Code
		}{
			{"TLS without a certificate or token", s.as(t, nil, ""), "", codes.Unauthenticated},
			{"TLS with a guessed token", s.as(t, nil, ""), "guessed-token-0123456789", codes.Unauthenticated},
			{"routing's certificate", s.as(t, s.ca, Routing), "", codes.PermissionDenied},
			{"sort's certificate and a guessed token", s.as(t, s.ca, Sort), "guessed-token-0123456789", codes.PermissionDenied},
		} {
			cache := cachev1.NewCacheServiceClient(s.dial(t, Cache, tt.opt))
			ctx := callCtx(t)
			if tt.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tt.token)
			}
			for _, req := range []*cachev1.StoreRequest{forged, valid} {
				if _, err := cache.Store(ctx, req); status.Code(err) != tt.want {
					t.Errorf("%s: Store(%v): %v, want %v", tt.name, req.GetArticleIds(), err, tt.want)
				}
			}
			if _, err := cache.Take(ctx, &cachev1.TakeRequest{UserId: "victim", ChannelId: 1, N: 10}); status.Code(err) != tt.want {
				t.Errorf("%s: Take: %v, want %v", tt.name, err, tt.want)
			}
		}

		// reco-center itself may Store, but not ids ≤ 0: the whole call is
		// INVALID_ARGUMENT and writes nothing.
		asCenter := cachev1.NewCacheServiceClient(s.dial(t, Cache, s.as(t, s.ca, RecoCenter)))
		if _, err := asCenter.Store(callCtx(t), forged); status.Code(err) != codes.InvalidArgument {
			t.Errorf("reco-center's Store of %v: %v, want InvalidArgument", forged.GetArticleIds(), err)
		}
		got, err := asCenter.Take(callCtx(t), &cachev1.TakeRequest{UserId: "victim", ChannelId: 1, N: 10})
		if err != nil || len(got.GetArticleIds()) != 0 {
			t.Errorf("Take as reco-center after the refused Stores = %v, %v; want nothing", got.GetArticleIds(), err)
		}

		body := s.scrape(t, Cache)
		for _, want := range []string{
			`reco_authz_denied_total{method="/reco.cache.v1.CacheService/Store",reason="caller_not_allowed"} 4`,
			`reco_authz_denied_total{method="/reco.cache.v1.CacheService/Store",reason="no_identity"} 2`,
			`reco_authz_denied_total{method="/reco.cache.v1.CacheService/Store",reason="unknown_token"} 2`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("cache's /metrics lacks %s", want)
			}
		}
	})

	t.Run("each internal method accepts only its callers", func(t *testing.T) {
		ctx := callCtx(t)
		feed := &recocenterv1.FeedRequest{UserId: "U1", ChannelId: 1, ArticleNum: 3, TimeStamp: time.Now().UnixMilli(),
			Strategy: &recocenterv1.Strategy{Name: "Algo-1", RecallSources: []recallv1.Source{recallv1.Source(100)}, SortModel: 200}}
		asCache := recocenterv1.NewRecoCenterServiceClient(s.dial(t, RecoCenter, s.as(t, s.ca, Cache)))
		if _, err := asCache.Feed(ctx, feed); status.Code(err) != codes.PermissionDenied {
			t.Errorf("Feed as cache: %v, want PermissionDenied", err)
		}
		asRouting := recocenterv1.NewRecoCenterServiceClient(s.dial(t, RecoCenter, s.as(t, s.ca, Routing)))
		far := &recocenterv1.FeedRequest{UserId: feed.UserId, ChannelId: 100000, ArticleNum: feed.ArticleNum, TimeStamp: feed.TimeStamp, Strategy: feed.Strategy}
		if _, err := asRouting.Feed(ctx, far); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Feed of channel 100000 as routing: %v, want InvalidArgument", err)
		}

		recallAsRouting := recallv1.NewRecallServiceClient(s.dial(t, Recall, s.as(t, s.ca, Routing)))
		if _, err := recallAsRouting.Recall(ctx, &recallv1.RecallRequest{UserId: "U1", ChannelId: 1, Sources: []recallv1.Source{100}}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("Recall as routing: %v, want PermissionDenied (only reco-center recalls)", err)
		}
		if _, err := recallAsRouting.Similar(ctx, &recallv1.SimilarRequest{ArticleId: 3000, N: 2}); err != nil {
			t.Errorf("Similar as routing: %v, want served (article_recommend)", err)
		}
		recallAsCenter := recallv1.NewRecallServiceClient(s.dial(t, Recall, s.as(t, s.ca, RecoCenter)))
		if _, err := recallAsCenter.Recall(ctx, &recallv1.RecallRequest{UserId: "U1", ChannelId: 100000, Sources: []recallv1.Source{100}}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Recall of channel 100000 as reco-center: %v, want InvalidArgument", err)
		}
		sortAsCenter := sortv1.NewSortServiceClient(s.dial(t, Sort, s.as(t, s.ca, RecoCenter)))
		if _, err := sortAsCenter.Rank(ctx, &sortv1.RankRequest{UserId: "U1", ChannelId: 1, Model: 200, ArticleIds: []int64{3000, -1}}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("Rank of id -1 as reco-center: %v, want InvalidArgument", err)
		}
		sortAsRouting := sortv1.NewSortServiceClient(s.dial(t, Sort, s.as(t, s.ca, Routing)))
		if _, err := sortAsRouting.Rank(ctx, &sortv1.RankRequest{UserId: "U1", ChannelId: 1, Model: 200, ArticleIds: []int64{3000}}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("Rank as routing: %v, want PermissionDenied", err)
		}
	})

	t.Run("the public API is served over TLS", func(t *testing.T) {
		// A client of the public API has no certificate: routing is
		// server-TLS only for it.
		client := userreco.NewUserRecommendClient(s.dial(t, Routing, s.as(t, nil, "")))
		got, err := client.UserRecommend(callCtx(t), &userreco.User{UserId: "U1", ChannelId: fixture.Channel, ArticleNum: 3, TimeStamp: time.Now().UnixMilli()})
		if err != nil || len(got.GetRecommends()) != 3 {
			t.Fatalf("user_recommend over TLS = %v, %v; want 3 articles", got.GetRecommends(), err)
		}
		sim, err := client.ArticleRecommend(callCtx(t), &userreco.Article{ArticleId: 3000, ArticleNum: 2})
		if err != nil || !slices.Equal(sim.GetArticleId(), []int64{3001, 3002}) {
			t.Errorf("article_recommend over TLS = %v, %v; want [3001 3002]", sim.GetArticleId(), err)
		}

		// The HTTP/JSON gateway serves the same certificate.
		body := strings.NewReader(`{"article_id": 3000, "article_num": 2}`)
		resp, err := s.https(t).Post("https://"+s.apps[Routing].HTTPAddr()+"/v1/article_recommend", "application/json", body)
		if err != nil {
			t.Fatalf("POST /v1/article_recommend over HTTPS: %v", err)
		}
		defer func() { _ = resp.Body.Close() }() // read whole below: closing loses nothing
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "3001") {
			t.Errorf("POST /v1/article_recommend over HTTPS: %s %s, want 200 with 3001", resp.Status, b)
		}
	})

	t.Run("rotated certificates are used without a restart", func(t *testing.T) {
		for _, svc := range []string{Routing, Cache} {
			before := s.serverSerial(t, svc)
			rotated := s.ca.Leaf(t, svc, s.dirs[svc]) // same files, new certificate
			if after := s.serverSerial(t, svc); after != rotated.Cert.SerialNumber.String() || after == before {
				t.Errorf("%s serves certificate %s after rotation, want the new one %s (was %s)", svc, after, rotated.Cert.SerialNumber, before)
			}
		}
		// Routing's peer connections are old; a refresh still goes through.
		client := userreco.NewUserRecommendClient(s.dial(t, Routing, s.as(t, nil, "")))
		if _, err := client.UserRecommend(callCtx(t), &userreco.User{UserId: "U1", ChannelId: fixture.Channel, ArticleNum: 2, TimeStamp: time.Now().UnixMilli()}); err != nil {
			t.Errorf("user_recommend after rotation: %v", err)
		}
		// A new client certificate of reco-center, written over its files, is
		// accepted by cache on a new connection.
		s.ca.Leaf(t, RecoCenter, s.dirs[RecoCenter])
		cli, err := certs.NewClient(certs.Client{Enabled: true, CAFile: s.ca.File, CertFile: s.leafs[RecoCenter].CertFile, KeyFile: s.leafs[RecoCenter].KeyFile}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		cache := cachev1.NewCacheServiceClient(s.dial(t, Cache, grpc.WithTransportCredentials(server.PeerTLS(cli))))
		if _, err := cache.Take(callCtx(t), &cachev1.TakeRequest{UserId: "U2", ChannelId: 1, N: 1}); err != nil {
			t.Errorf("Take with reco-center's rotated certificate: %v", err)
		}
	})
}

// serverSerial is the serial number of the certificate service's gRPC port
// serves on a new connection.
func (s *suite) serverSerial(t *testing.T, service string) string {
	t.Helper()
	var p peer.Peer
	conn := s.dial(t, service, s.as(t, nil, ""))
	if _, err := healthpb.NewHealthClient(conn).Check(callCtx(t), &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		t.Fatalf("connection to %s: auth info %T, want TLS", service, p.AuthInfo)
	}
	return ti.State.PeerCertificates[0].SerialNumber.String()
}

// https is an HTTP client that trusts the suite's CA.
func (s *suite) https(t *testing.T) *http.Client {
	t.Helper()
	cli := s.ca.Client(t, nil, "")
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: cli.Config("127.0.0.1")}}
}

// scrape reads service's /metrics over HTTPS, verifying its certificate.
func (s *suite) scrape(t *testing.T, service string) string {
	t.Helper()
	resp, err := s.https(t).Get("https://" + s.apps[service].MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read whole below: closing loses nothing
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics of %s: %s", service, resp.Status)
	}
	// Plain HTTP to the same port is not answered with metrics.
	if plain, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + s.apps[service].MetricsAddr() + "/metrics"); err == nil {
		pb, _ := io.ReadAll(plain.Body)
		_ = plain.Body.Close() // read whole: closing loses nothing
		if strings.Contains(string(pb), "reco_") {
			t.Errorf("plain HTTP to the TLS metrics port of %s served metrics", service)
		}
	}
	return string(b)
}

// TestAllInOneAuthorizesByToken: with tokens and no TLS, the process's own
// calls between its services go on, while a forged call on its port needs the
// token of a caller the method allows.
func TestAllInOneAuthorizesByToken(t *testing.T) {
	cfg := testConfig(t)
	tokens := t.TempDir()
	for caller, tok := range map[string]string{Routing: "routing-secret-0123456789", RecoCenter: "recocenter-secret-0123456789"} {
		if err := os.WriteFile(filepath.Join(tokens, caller), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Server.Authz = config.Authz{Enabled: true, TokensDir: tokens}
	cfg.Sort.ModelDir = t.TempDir()
	seedFixture(t, cfg, cfg.Sort.ModelDir)
	core, logs := observer.New(zap.DebugLevel)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg, zap.New(core), order)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	got, err := userreco.NewUserRecommendClient(conn).UserRecommend(callCtx(t), &userreco.User{UserId: "U1", ChannelId: fixture.Channel, ArticleNum: 3, TimeStamp: time.Now().UnixMilli()})
	if err != nil || len(got.GetRecommends()) != 3 {
		t.Fatalf("user_recommend = %v, %v; want 3 articles (in-process calls are the process's own)", got.GetRecommends(), err)
	}
	cache := cachev1.NewCacheServiceClient(conn)
	store := &cachev1.StoreRequest{UserId: "victim", ChannelId: 1, ArticleIds: []int64{5}}
	for _, tt := range []struct {
		token string
		want  codes.Code
	}{
		{"", codes.Unauthenticated},
		{"not-anyone's-token-0123456789", codes.Unauthenticated},
		{"routing-secret-0123456789", codes.PermissionDenied},
		{"recocenter-secret-0123456789", codes.OK},
	} {
		ctx := callCtx(t)
		if tt.token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tt.token)
		}
		if _, err := cache.Store(ctx, store); status.Code(err) != tt.want {
			t.Errorf("Store with token %q: %v, want %v", tt.token, err, tt.want)
		}
	}

	// Refusals are logged with the caller and the reason, never a token.
	refused := 0
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, "secret-0123456789") || strings.Contains(line, "not-anyone's-token") {
			t.Errorf("a log line carries a token: %s", line)
		}
		if e.Message == "call refused" {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("%d refusals logged, want 3", refused)
	}
}

// TestMetricsListenerServesOnlyMetrics: with the default configuration the
// metrics port answers /metrics and nothing else (no profiles), and profiles
// are served on server.pprof_addr when it is set.
func TestMetricsListenerServesOnlyMetrics(t *testing.T) {
	get := func(t *testing.T, url string) int {
		t.Helper()
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // only the status is wanted
		return resp.StatusCode
	}
	cfg := testConfig(t)
	a, _, _ := start(t, cfg, order)
	if a.PprofAddr() != "" {
		t.Errorf("default pprof address %q, want none", a.PprofAddr())
	}
	base := "http://" + a.MetricsAddr()
	if code := get(t, base+"/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics: %d, want 200", code)
	}
	for _, path := range []string{"/", "/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace", "/debug/pprof/cmdline", "/metrics/x", "/healthz"} {
		if code := get(t, base+path); code != http.StatusNotFound {
			t.Errorf("GET %s on the metrics port: %d, want 404", path, code)
		}
	}

	cfg = testConfig(t)
	cfg.Server.PprofAddr = "127.0.0.1:0"
	a, _, _ = start(t, cfg, []string{Routing})
	if code := get(t, "http://"+a.PprofAddr()+"/debug/pprof/cmdline"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/cmdline on server.pprof_addr: %d, want 200", code)
	}
	if code := get(t, "http://"+a.MetricsAddr()+"/debug/pprof/cmdline"); code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/cmdline on the metrics port with pprof on: %d, want 404", code)
	}
}

// TestEveryMethodHasAPolicy: every method a process can serve has a policy
// entry, and every entry names a method that exists, so a new method cannot
// be left open or closed by accident once authorization is on.
func TestEveryMethodHasAPolicy(t *testing.T) {
	a, _, _ := start(t, testConfig(t), order)
	served := map[string]bool{}
	for svc, info := range a.srv.GetServiceInfo() {
		if strings.HasPrefix(svc, "grpc.") {
			continue // health and reflection: open to anyone
		}
		for _, m := range info.Methods {
			method := "/" + svc + "/" + m.Name
			served[method] = true
			if _, ok := policy[method]; !ok {
				t.Errorf("%s has no entry in policy (pkg/app/policy.go): say who may call it", method)
			}
		}
	}
	for method := range policy {
		if !served[method] {
			t.Errorf("policy names %s, which no service serves", method)
		}
	}
}
