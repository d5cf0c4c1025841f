package config

import (
	"strings"
	"testing"
	"time"
)

func TestUnknownEnvVariableStopsLoad(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want string // the whole error, or "" for none
	}{
		{
			name: "singular of a list key",
			env:  []string{"RECO_STORAGE_REDIS_ADDR=x"},
			want: "unknown environment variable RECO_STORAGE_REDIS_ADDR: did you mean RECO_STORAGE_REDIS_ADDRS (storage.redis.addrs)?; every RECO_* variable must be a config key (`reco config env` lists them)",
		},
		{
			name: "misspelt key among good ones",
			env:  []string{"RECO_LOG_LEVEL=debug", "RECO_SERVER_GRPC_ADR=127.0.0.1:1", "PATH=/bin"},
			want: "unknown environment variable RECO_SERVER_GRPC_ADR: did you mean RECO_SERVER_GRPC_ADDR (server.grpc_addr)?; every RECO_* variable must be a config key (`reco config env` lists them)",
		},
		{
			name: "several, reported sorted",
			env:  []string{"RECO_STORAGE_REDIS_ADDR=x", "RECO_HBASE_THRIFT=127.0.0.1:9090", "RECO_STORAGE_REDIS_ADDR=y"},
			want: "unknown environment variable RECO_HBASE_THRIFT: did you mean RECO_STORAGE_HBASE_THRIFT_ADDR (storage.hbase.thrift_addr)?; " +
				"unknown environment variable RECO_STORAGE_REDIS_ADDR: did you mean RECO_STORAGE_REDIS_ADDRS (storage.redis.addrs)?; " +
				"every RECO_* variable must be a config key (`reco config env` lists them)",
		},
		{
			name: "unknown even when empty",
			env:  []string{"RECO_LOG_LEVL="},
			want: "unknown environment variable RECO_LOG_LEVL: did you mean RECO_LOG_LEVEL (log.level)?; every RECO_* variable must be a config key (`reco config env` lists them)",
		},
		{
			name: "reported before a bad value of a known key, no suggestion when none is close",
			env:  []string{"RECO_SERVER_GRPC_ADDR=nope", "RECO_REQUIRE_INTEGRATION=1"},
			want: "unknown environment variable RECO_REQUIRE_INTEGRATION (no config key is close); every RECO_* variable must be a config key (`reco config env` lists them)",
		},
		{name: "other prefixes are not ours", env: []string{"RECOTEST_REDIS_ADDR=127.0.0.1:6390", "RECO=1", "reco_log_level=x", "NORECO_X=1"}},
		{name: "known keys only", env: []string{"RECO_STORAGE_REDIS_ADDRS=a:1,b:2", "RECO_CLIENTS_SORT_TIMEOUT=50ms"}},
		{name: "entry without =", env: []string{"RECO_NOT_A_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", tt.env)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Load(%q) = %v, want no error", tt.env, err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("Load(%q) succeeded, want %q", tt.env, tt.want)
			case !strings.HasPrefix(err.Error(), tt.want):
				t.Fatalf("Load(%q) error\n  %s\nwant\n  %s", tt.env, err, tt.want)
			}
		})
	}
}

func TestClosestEnv(t *testing.T) {
	cfg := Default()
	table := EnvTable(&cfg)
	tests := []struct{ name, want string }{
		{"RECO_STORAGE_REDIS_ADDR", "RECO_STORAGE_REDIS_ADDRS"},
		{"RECO_STORAGE_HBASE_THRIFT", "RECO_STORAGE_HBASE_THRIFT_ADDR"},
		{"RECO_SORT_MODELDIR", "RECO_SORT_MODEL_DIR"},
		{"RECO_CLIENTS_RECAL_TIMEOUT", "RECO_CLIENTS_RECALL_TIMEOUT"},
		{"RECO_STORAGE_TABLE", "RECO_STORAGE_TABLES"},
		{"RECO_HBASE_THRIFT", "RECO_STORAGE_HBASE_THRIFT_ADDR"}, // plain distance says RECO_CACHE_TTL
		{"RECO_REDIS_ADDR", "RECO_STORAGE_REDIS_ADDRS"},
		{"RECO_STORAGE_REDIS_ADDRS_0", "RECO_STORAGE_REDIS_ADDRS"},
		{"RECO_GRPC_ADDR", "RECO_SERVER_GRPC_ADDR"},
	}
	for _, tt := range tests {
		if e, ok := closestEnv(table, tt.name); !ok || e.Env != tt.want {
			t.Errorf("closestEnv(%s) = %s, %v; want %s", tt.name, e.Env, ok, tt.want)
		}
	}
	// Nothing worth suggesting: far from every key and no key's words.
	for _, name := range []string{"RECO_TEST_AS_MAIN", "RECO_REQUIRE_INTEGRATION", "RECO_BENCH_SCALE"} {
		if e, ok := closestEnv(table, name); ok {
			t.Errorf("closestEnv(%s) = %s, want no suggestion", name, e.Env)
		}
	}
	if _, ok := closestEnv(nil, "RECO_X"); ok {
		t.Error("closestEnv of an empty table found something")
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"abc", "", 3},
		{"ADDR", "ADDRS", 1},
		{"kitten", "sitting", 3},
		{"flaw", "lawn", 2},
		{"RECO_LOG_LEVEL", "RECO_LOG_LEVEL", 0},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := levenshtein(tt.b, tt.a); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d (symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestShortDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{5 * time.Second, "5s"},
		{90 * time.Second, "1m30s"},
		{30 * time.Minute, "30m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
	}
	for _, tt := range tests {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestValueRoundTrips: every key's Value, set through its variable, gives the
// same configuration back, so Value is the environment form of the default.
func TestValueRoundTrips(t *testing.T) {
	def := Default()
	var environ []string
	for _, e := range EnvTable(&def) {
		environ = append(environ, e.Env+"="+e.Value())
	}
	// Set them over zero values, so that a Value that does not parse back cannot
	// hide behind the default.
	var got Config
	if err := applyEnv(&got, environ); err != nil {
		t.Fatal(err)
	}
	gotTable, wantTable := EnvTable(&got), EnvTable(&def)
	for i, w := range wantTable {
		if g := gotTable[i].Value(); g != w.Value() {
			t.Errorf("%s: %s=%q sets %q", w.Key, w.Env, w.Value(), g)
		}
	}
}
