package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/internal/originalclient"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog/logtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// asMain is the variable that makes the test binary run main. It is not RECO_*:
// reco refuses every RECO_* variable that is not a config key.
const asMain = "RECOTEST_AS_MAIN"

// TestMain lets the test binary stand in for reco: with RECOTEST_AS_MAIN set it
// runs main, so the split-mode test starts real processes of this code without
// a separate build.
func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // only its port was wanted
	return l.Addr().String()
}

// splitEnv points the processes of one split-mode test at the real HBase,
// Redis and Kafka the test command started: processes apart share their
// stores (the cache's seen sets are the claims reco-center seeds), which
// embedded files, one per process, cannot be. The hops get generous deadlines
// (fixture.WiringDeadlines).
func splitEnv(t *testing.T) []string {
	thrift, redis := storagetest.Server(t, storagetest.EnvHBase), storagetest.Server(t, storagetest.EnvRedis)
	kafka := logtest.Server(t, logtest.EnvKafka)
	env := []string{"RECO_STORAGE_TABLES=hbase", "RECO_STORAGE_HBASE_THRIFT_ADDR=" + thrift, "RECO_STORAGE_SETS=redis", "RECO_STORAGE_REDIS_ADDRS=" + redis,
		"RECO_STORAGE_LOG_BACKEND=kafka", "RECO_STORAGE_LOG_KAFKA_BROKERS=" + kafka, "RECO_STORAGE_LOG_NAMESPACE=" + logtest.Namespace(t)}
	return append(env, fixture.WiringDeadlines()...)
}

// cleanEnviron is the test's environment without any RECO_* variable: a process
// the test starts gets exactly the configuration the test gives it, and no
// stray RECO_* variable that would stop it.
func cleanEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// recoCommand runs the test binary as `reco args...` (see TestMain) with
// cleanEnviron and env.
func recoCommand(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Args = append([]string{"reco"}, args...)
	cmd.Env = append(append(cleanEnviron(), asMain+"=1"), env...)
	return cmd
}

func waitServing(t *testing.T, addr string, out *bytes.Buffer) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return conn
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never became SERVING; output:\n%s", addr, out)
	return nil
}

// splitChannel is this package's fixture channel (see fixture.SeedChannel).
const splitChannel = 5

// TestSplitModeFiveProcesses starts one process per service, as a supervisor or
// Kubernetes would, and calls the public API through routing.
func TestSplitModeFiveProcesses(t *testing.T) {
	dir := t.TempDir()
	addrs := map[string]string{}
	for _, target := range []string{app.Routing, app.RecoCenter, app.Recall, app.Sort, app.Cache} {
		addrs[target] = freeAddr(t)
	}
	peers := []string{
		"RECO_CLIENTS_RECOCENTER_ADDR=" + addrs[app.RecoCenter],
		"RECO_CLIENTS_RECALL_ADDR=" + addrs[app.Recall],
		"RECO_CLIENTS_SORT_ADDR=" + addrs[app.Sort],
		"RECO_CLIENTS_CACHE_ADDR=" + addrs[app.Cache],
	}

	// Seed the fixture feed into the stores the processes share.
	storage := splitEnv(t)
	user := fmt.Sprintf("split-%d", time.Now().UnixNano())
	modelDir := filepath.Join(dir, "models")
	cfg, err := config.Load("", append(cleanEnviron(), storage...))
	if err != nil {
		t.Fatal(err)
	}
	st, cleanup, err := app.OpenStores(context.Background(), cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = fixture.SeedChannel(context.Background(), st.Tables, st.Sets, modelDir, splitChannel, user)
	if cerr := cleanup(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	conns := map[string]*grpc.ClientConn{}
	for target, addr := range addrs {
		env := append(append([]string{"RECO_SERVER_GRPC_ADDR=" + addr, "RECO_SERVER_LAME_DUCK=0s", "RECO_SERVER_METRICS_ADDR=" + freeAddr(t), "RECO_SERVER_HTTP_ADDR=" + freeAddr(t), "RECO_SORT_MODEL_DIR=" + modelDir}, peers...), storage...)
		cmd := recoCommand(context.Background(), env, "serve", "--target="+target)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("%s did not stop cleanly on SIGTERM: %v\n%s", target, err, &out)
			}
			if t.Failed() {
				t.Logf("%s output:\n%s", target, &out)
			}
		})
		conns[target] = waitServing(t, addr, &out)
	}

	services := map[string]string{
		app.Routing:    "UserRecommend",
		app.RecoCenter: "reco.recocenter.v1.RecoCenterService",
		app.Recall:     "reco.recall.v1.RecallService",
		app.Sort:       "reco.sort.v1.SortService",
		app.Cache:      "reco.cache.v1.CacheService",
	}
	for target, svc := range services {
		resp, err := healthpb.NewHealthClient(conns[target]).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("%s process: health of %s = %v, %v", target, svc, resp.GetStatus(), err)
		}
		for other, otherSvc := range services {
			if other == target {
				continue
			}
			if _, err := healthpb.NewHealthClient(conns[target]).Check(context.Background(), &healthpb.HealthCheckRequest{Service: otherSvc}); err == nil {
				t.Errorf("%s process also serves %s", target, otherSvc)
			}
		}
	}

	// A client compiled from the original protobuf, through routing, across all
	// five processes.
	oc, err := originalclient.New(conns[app.Routing])
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	tr, err := oc.UserRecommend(context.Background(), user, splitChannel, 5, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Recommends) != 5 || tr.Recommends[0].ArticleID != 2989 || tr.Exposure == "" || tr.TimeStamp != 0 {
		t.Errorf("first refresh through five processes = %+v, want 5 articles led by 2989, an exposure, time_stamp 0", tr)
	}
	again, err := oc.UserRecommend(context.Background(), user, splitChannel, 5, now+1000)
	if err != nil || len(again.Recommends) != 5 || again.TimeStamp != now {
		t.Errorf("second refresh = %+v, %v; want 5 more and the first refresh's time stamp", again, err)
	}
	page, err := oc.UserRecommend(context.Background(), user, splitChannel, 5, now)
	if err != nil || page.Exposure != "" || len(page.Recommends) != 5 || page.Recommends[0].ArticleID != tr.Recommends[0].ArticleID {
		t.Errorf("history page = %+v, %v; want the first refresh again without exposure", page, err)
	}
	similar, err := oc.ArticleRecommend(context.Background(), 3000, 5)
	if err != nil || !slices.Equal(similar, []int64{3001, 3002, 3003}) {
		t.Errorf("article_recommend through routing → recall processes = %v, %v; want [3001 3002 3003]", similar, err)
	}
}

func TestCommandLine(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"config", "env"}, &out); err != nil || !strings.Contains(out.String(), "RECO_STORAGE_HBASE_THRIFT_ADDR") {
		t.Errorf("config env = %v, output %q", err, out.String())
	}
	t.Setenv("RECO_STORAGE_EMBEDDED_PATH", filepath.Join(t.TempDir(), "b.db"))
	for i := range 2 {
		out.Reset()
		if err := run([]string{"admin", "bootstrap"}, &out); err != nil {
			t.Errorf("bootstrap run %d: %v", i+1, err)
		}
	}
	for _, args := range [][]string{nil, {"serve", "--target=nope"}, {"frobnicate"}} {
		if err := run(args, &out); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
	t.Setenv("RECO_SERVER_GRPC_ADDR", "nowhere")
	err := run([]string{"serve"}, &out)
	if err == nil || !strings.Contains(err.Error(), "server.grpc_addr") {
		t.Errorf("serve with a bad address: %v, want an error naming server.grpc_addr", err)
	}
}

// TestServeRejectsUnknownVariable: `RECO_STORAGE_REDIS_ADDR=x reco serve` (the
// key is storage.redis.addrs) exits 1 before serving, naming the variable and
// the one it resembles, instead of leaving Redis at its default.
func TestServeRejectsUnknownVariable(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{
			name: "misspelt key",
			env:  []string{"RECO_STORAGE_REDIS_ADDR=x"},
			want: []string{"reco: unknown environment variable RECO_STORAGE_REDIS_ADDR: did you mean RECO_STORAGE_REDIS_ADDRS (storage.redis.addrs)?"},
		},
		{
			name: "old harness variables",
			env:  []string{"RECO_REDIS_ADDR=127.0.0.1:6390", "RECO_HBASE_THRIFT=127.0.0.1:9090"},
			want: []string{"unknown environment variable RECO_HBASE_THRIFT", "unknown environment variable RECO_REDIS_ADDR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// Were the variable ignored, serve would start: somewhere harmless,
			// and only until the deadline.
			env := append([]string{
				"RECO_SERVER_GRPC_ADDR=" + freeAddr(t), "RECO_SERVER_METRICS_ADDR=" + freeAddr(t), "RECO_SERVER_HTTP_ADDR=" + freeAddr(t),
				"RECO_STORAGE_EMBEDDED_PATH=" + filepath.Join(dir, "reco.db"), "RECO_STORAGE_LOG_EMBEDDED_DIR=" + filepath.Join(dir, "log"), "RECO_SORT_MODEL_DIR=" + filepath.Join(dir, "models"),
			}, tt.env...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := recoCommand(ctx, env, "serve")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("reco serve with %q was still running after 30s; output:\n%s%s", tt.env, &stdout, &stderr)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("reco serve with %q: %v, want exit status 1; output:\n%s%s", tt.env, err, &stdout, &stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("reco serve with %q: stderr\n%s\nwant it to contain %q", tt.env, &stderr, w)
				}
			}
		})
	}

	// Every command that loads the configuration refuses it too (in-process:
	// one that returns even if it did not).
	t.Setenv("RECO_STORAGE_EMBEDDED_PATH", filepath.Join(t.TempDir(), "b.db"))
	t.Setenv("RECO_STORAGE_REDIS_ADDR", "x")
	var out bytes.Buffer
	if err := run([]string{"admin", "bootstrap"}, &out); err == nil || !strings.Contains(err.Error(), "unknown environment variable RECO_STORAGE_REDIS_ADDR") {
		t.Errorf("admin bootstrap with RECO_STORAGE_REDIS_ADDR set: %v, want an error naming it", err)
	}
}
