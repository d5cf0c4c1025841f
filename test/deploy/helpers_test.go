package deploy

import (
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// root is the repository root, from this package's directory.
const root = "../.."

func repoPath(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

func readRepoFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// services are the six reco targets, in start order.
var services = []string{"cache", "sort", "recall", "recocenter", "nearline", "routing"}

// healthService is the gRPC service each target registers, as health checks
// name it: "" (the process as a whole) for nearline, which registers none.
var healthService = map[string]string{
	"routing":    "UserRecommend",
	"recocenter": "reco.recocenter.v1.RecoCenterService",
	"recall":     "reco.recall.v1.RecallService",
	"sort":       "reco.sort.v1.SortService",
	"cache":      "reco.cache.v1.CacheService",
	"nearline":   "",
}

// grpcPorts and metricsPorts are where each target listens in every
// deployment (README "Ports"): compose, supervisor and Kubernetes agree.
var (
	grpcPorts    = map[string]string{"routing": "9999", "recocenter": "10001", "recall": "10002", "sort": "10003", "cache": "10004", "nearline": "10005"}
	metricsPorts = map[string]string{"routing": "9100", "recocenter": "9101", "recall": "9102", "sort": "9103", "cache": "9104", "nearline": "9105"}
)

// logUsers are the targets that open the durable log (pkg/app's LogRole;
// TestLogUsers keeps the list honest): with more than one process, it must be
// Kafka. logAppenders are those that append to it, and so need a spill
// directory of their own (one process per directory); nearline only consumes.
var (
	logUsers     = []string{"recocenter", "nearline", "routing"}
	logAppenders = []string{"recocenter", "routing"}
)

// httpServers are the targets with HTTP routes on server.http_addr (routing's
// gateway; nearline's operator readouts, GET /v1/ab_report), and the port each
// listens on in every deployment.
var httpServers = map[string]string{"routing": "9998", "nearline": "9997"}

// peers are the services each target calls (pkg/app's module table).
var peers = map[string][]string{
	"routing":    {"recocenter", "recall"},
	"recocenter": {"cache", "recall", "sort"},
}

// clientEnv is the environment variable of each peer's address.
var clientEnv = map[string]string{
	"recocenter": "RECO_CLIENTS_RECOCENTER_ADDR",
	"recall":     "RECO_CLIENTS_RECALL_ADDR",
	"sort":       "RECO_CLIENTS_SORT_ADDR",
	"cache":      "RECO_CLIENTS_CACHE_ADDR",
}

// envKeys maps every environment variable the binary reads to its config key.
func envKeys() map[string]string {
	cfg := config.Default()
	keys := map[string]string{}
	for _, e := range config.EnvTable(&cfg) {
		keys[e.Env] = e.Key
	}
	return keys
}

// checkConfigEnv reports every RECO_* variable of env that is not a config key,
// then loads the configuration the way the binary does (defaults, then env) and
// returns it. files maps a path the deployment mounts to a file of the
// repository holding its content (the strategies file): the loader reads the
// repository's file in its place.
func checkConfigEnv(t *testing.T, where string, env map[string]string, files map[string]string) (config.Config, bool) {
	t.Helper()
	keys := envKeys()
	var environ []string
	ok := true
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := env[k]
		if !strings.HasPrefix(k, "RECO_") {
			continue
		}
		if _, known := keys[k]; !known {
			t.Errorf("%s: %s is not a configuration variable (see `reco config env`)", where, k)
			ok = false
			continue
		}
		if local, mounted := files[v]; mounted {
			v = local
		}
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load("", environ)
	if err != nil {
		t.Errorf("%s: the configuration does not load: %v", where, err)
		return cfg, false
	}
	return cfg, ok
}

// checkStrategies fails unless b is a valid A/B plan.
func checkStrategies(t *testing.T, where string, b []byte) {
	t.Helper()
	if _, err := abtest.Parse(b); err != nil {
		t.Errorf("%s: %v", where, err)
	}
}

// hostPort splits addr, failing the test on a malformed one.
func hostPort(t *testing.T, where, addr string) (string, string) {
	t.Helper()
	// A peer may be named as a gRPC DNS target: every address it resolves to.
	h, p, err := net.SplitHostPort(strings.TrimPrefix(addr, "dns:///"))
	if err != nil {
		t.Errorf("%s: %q is not host:port: %v", where, addr, err)
	}
	return h, p
}

// stopTime is the longest a reco process takes from SIGTERM to its exit: the
// lame duck (NOT_SERVING, still serving), the drain, and up to 1s for the
// metrics listener. A deployment must wait longer before it kills.
func stopTime(cfg config.Config) time.Duration {
	return cfg.Server.LameDuck + cfg.Server.DrainTimeout + time.Second
}
