package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "reco.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFileThenEnv(t *testing.T) {
	p := writeFile(t, `
server:
  grpc_addr: 127.0.0.1:7000
storage:
  tables: hbase
  hbase:
    thrift_addr: 127.0.0.1:9091
`)
	cfg, err := Load(p, []string{"RECO_STORAGE_HBASE_THRIFT_ADDR=10.0.0.1:9090", "RECO_CLIENTS_SORT_TIMEOUT=50ms", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.GRPCAddr != "127.0.0.1:7000" {
		t.Errorf("grpc_addr = %q, want the file's", cfg.Server.GRPCAddr)
	}
	if cfg.Storage.HBase.ThriftAddr != "10.0.0.1:9090" {
		t.Errorf("thrift_addr = %q, want the environment's", cfg.Storage.HBase.ThriftAddr)
	}
	if cfg.Clients.Sort.Timeout != 50*time.Millisecond {
		t.Errorf("clients.sort.timeout = %v, want 50ms", cfg.Clients.Sort.Timeout)
	}
	if cfg.Storage.Redis.Addrs[0] != "127.0.0.1:6379" {
		t.Errorf("redis addrs = %v, want the default", cfg.Storage.Redis.Addrs)
	}
	if cfg.Clients.Recall != Default().Clients.Recall {
		t.Errorf("clients.recall = %+v, want the default", cfg.Clients.Recall)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     []string
		wantKey string
	}{
		{"unknown yaml key", "server:\n  grpc_adr: x\n", nil, "grpc_adr"},
		{"bad address", "", []string{"RECO_SERVER_GRPC_ADDR=nope"}, "server.grpc_addr"},
		{"bad http address", "", []string{"RECO_SERVER_HTTP_ADDR=nope"}, "server.http_addr"},
		{"bad duration", "", []string{"RECO_CLIENTS_CACHE_TIMEOUT=soon"}, "clients.cache.timeout"},
		{"zero timeout", "clients:\n  recall:\n    timeout: 0s\n", nil, "clients.recall.timeout"},
		{"bad backend", "", []string{"RECO_STORAGE_TABLES=cassandra"}, "storage.tables"},
		{"bad pool", "", []string{"RECO_STORAGE_SETS=redis", "RECO_STORAGE_REDIS_POOL_SIZE=-1"}, "pool_size"},
		{"no redis address", "", []string{"RECO_STORAGE_SETS=redis", "RECO_STORAGE_REDIS_ADDRS="}, "storage.redis: addrs"},
		{"bad number", "", []string{"RECO_STORAGE_REDIS_DB=x"}, "storage.redis.db"},
		{"bad level", "log:\n  level: loud\n", nil, "log.level"},
		{"negative lame duck", "", []string{"RECO_SERVER_LAME_DUCK=-1s"}, "server.lame_duck"},
		{"negative in-flight limit", "", []string{"RECO_SERVER_MAX_INFLIGHT=-1"}, "server.max_inflight"},
		{"zero future skew", "routing:\n  max_future_skew: 0s\n", nil, "routing.max_future_skew"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ""
			if tt.file != "" {
				p = writeFile(t, tt.file)
			}
			_, err := Load(p, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("Load err = %v, want one naming %q", err, tt.wantKey)
			}
		})
	}
}

// TestHTTPAddrEmptyTurnsTheGatewayOff: an empty server.http_addr is valid
// (no gateway), unlike an empty gRPC or metrics address.
func TestHTTPAddrEmptyTurnsTheGatewayOff(t *testing.T) {
	cfg, err := Load("", []string{"RECO_SERVER_HTTP_ADDR="})
	if err != nil || cfg.Server.HTTPAddr != "" {
		t.Errorf("Load with RECO_SERVER_HTTP_ADDR empty = %q, %v; want it off and valid", cfg.Server.HTTPAddr, err)
	}
}

func TestEnvTableCoversEveryKey(t *testing.T) {
	cfg := Default()
	table := EnvTable(&cfg)
	seen := map[string]bool{}
	for _, e := range table {
		if e.Key == "" || strings.Contains(e.Key, "..") || seen[e.Env] {
			t.Errorf("bad or duplicate entry %+v", e)
		}
		seen[e.Env] = true
	}
	for _, want := range []string{"RECO_SERVER_GRPC_ADDR", "RECO_STORAGE_EMBEDDED_PATH", "RECO_STORAGE_REDIS_DB", "RECO_STORAGE_REDIS_ADDRS", "RECO_STORAGE_EMBEDDED_NO_SYNC", "RECO_CLIENTS_RECOCENTER_ADDR"} {
		if !seen[want] {
			t.Errorf("env table lacks %s", want)
		}
	}
	// Every leaf can be set from the environment: setting each to a valid form of
	// its type must not fail with "no environment form".
	for _, e := range table {
		if err := set(e.field, "1s"); err != nil && strings.Contains(err.Error(), "no environment form") {
			t.Errorf("%s: %v", e.Key, err)
		}
	}
}

func TestPeerAddressesNameReplicas(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:10001":                  true,
		"10.0.0.1:10001,10.0.0.2:10001":    true,
		"dns:///recocenter.reco.svc:10001": true,
		"10.0.0.1:10001,":                  false,
		"recocenter":                       false,
		"dns:///recocenter":                false,
		"10.0.0.1:10001,10.0.0.2":          false,
	} {
		cfg := Default()
		cfg.Clients.RecoCenter.Addr = addr
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("clients.recocenter.addr %q: Validate = %v, want ok=%v", addr, err, ok)
		}
	}
}
