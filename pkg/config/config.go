// Package config is the one configuration of the reco binary: a YAML file whose
// every key can be overridden by an environment variable, validated at start-up
// with errors that name the bad key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/redisstore"
	"github.com/toutiao-reco/toutiao-reco/services/cache"
	"github.com/toutiao-reco/toutiao-reco/services/nearline"
	"github.com/toutiao-reco/toutiao-reco/services/recall"
	"github.com/toutiao-reco/toutiao-reco/services/recocenter"
	"github.com/toutiao-reco/toutiao-reco/services/routing"
	"github.com/toutiao-reco/toutiao-reco/services/sort"
	"github.com/toutiao-reco/toutiao-reco/services/track"
)

// Config is the root configuration.
type Config struct {
	Server     Server            `yaml:"server"`
	Log        Log               `yaml:"log"`
	Clients    Clients           `yaml:"clients"`
	Routing    routing.Config    `yaml:"routing"`
	RecoCenter recocenter.Config `yaml:"recocenter"`
	Recall     recall.Config     `yaml:"recall"`
	Sort       sort.Config       `yaml:"sort"`
	Cache      cache.Config      `yaml:"cache"`
	Track      track.Config      `yaml:"track"`
	Nearline   nearline.Config   `yaml:"nearline"`
	Storage    Storage           `yaml:"storage"`
}

// Server configures the gRPC server every process runs and its side listeners.
type Server struct {
	// GRPCAddr serves every service the process runs, the health service and
	// reflection.
	GRPCAddr string `yaml:"grpc_addr"`
	// MetricsAddr serves Prometheus metrics at /metrics over HTTP.
	MetricsAddr string `yaml:"metrics_addr"`
	// HTTPAddr serves the public API as HTTP/JSON (pkg/gateway) in a process
	// that runs routing; other processes ignore it. Empty turns it off.
	HTTPAddr string `yaml:"http_addr"`
	// LameDuck is how long a process keeps serving after SIGTERM while its
	// health reports NOT_SERVING, so load balancers and clients move away
	// before it refuses anything; then the drain begins. 0 skips it.
	LameDuck time.Duration `yaml:"lame_duck"`
	// DrainTimeout bounds the graceful stop after the lame duck: in-flight
	// calls get this long before the server stops hard.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxInflight bounds the calls a process handles at once (health and the
	// calls between its own services aside); one more is answered
	// RESOURCE_EXHAUSTED at once instead of queueing into deadline errors. 0 is
	// unlimited.
	MaxInflight int `yaml:"max_inflight"`
	// PprofAddr serves Go's profiles (/debug/pprof/) for operators; empty (the
	// default) serves none. It must be a loopback address: profiles reveal
	// the process's memory and cost CPU to take, so they are reached through
	// a port-forward or a shell on the host, never from the network.
	PprofAddr string `yaml:"pprof_addr"`
	// TLS is the certificate of every listener of the process (gRPC, metrics,
	// the HTTP gateway) and, with client_ca_file, mutual TLS. Off by default.
	TLS certs.Server `yaml:"tls"`
	// Authz enforces who may call what (DESIGN.md §10). Off by default.
	Authz Authz `yaml:"authz"`
}

// Authz turns on the per-method policy of pkg/app (policy.go): each internal
// method accepts only the callers that need it, known by their mTLS certificate
// (server.tls.client_ca_file) or their bearer token (TokensDir).
type Authz struct {
	Enabled bool `yaml:"enabled"`
	// TokensDir holds one file per caller, named after it (routing,
	// recocenter, operator), whose content is the token that caller sends; a
	// Kubernetes Secret mounted as a directory. Re-read every few seconds.
	TokensDir string `yaml:"tokens_dir"`
}

// Log configures zap.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
}

// Clients says where each service is reached when this process does not run it,
// and the deadline of every call to it.
type Clients struct {
	RecoCenter Client `yaml:"recocenter"`
	Recall     Client `yaml:"recall"`
	Sort       Client `yaml:"sort"`
	Cache      Client `yaml:"cache"`
	// TLS is how every peer is dialled: the CA their certificates must chain
	// to, and this process's certificate for mutual TLS. Off by default.
	TLS certs.Client `yaml:"tls"`
	// TokenFile holds the token this process sends to its peers
	// (authorization: Bearer …), when they authorize by token. Re-read every
	// few seconds.
	TokenFile string `yaml:"token_file"`
}

// Client is one peer service.
type Client struct {
	Addr    string        `yaml:"addr"`
	Timeout time.Duration `yaml:"timeout"`
}

// Storage chooses and configures the backends.
type Storage struct {
	// Tables is the HBase role: "embedded" or "hbase".
	Tables string `yaml:"tables"`
	// Sets is the Redis role: "embedded" or "redis".
	Sets     string            `yaml:"sets"`
	Embedded embedded.Config   `yaml:"embedded"`
	HBase    hbase.Config      `yaml:"hbase"`
	Redis    redisstore.Config `yaml:"redis"`
	// Log is the durable log served ids and readers' actions travel on.
	Log eventlog.Config `yaml:"log"`
}

// Default returns the configuration `make run` uses: everything in one process on
// the embedded backend.
func Default() Config {
	return Config{
		Server:     Server{GRPCAddr: "127.0.0.1:9999", MetricsAddr: "127.0.0.1:9100", HTTPAddr: "127.0.0.1:9998", LameDuck: 5 * time.Second, DrainTimeout: 5 * time.Second, MaxInflight: 512},
		Log:        Log{Level: "info"},
		Routing:    routing.Config{MaxArticleNum: 100, AnonymousUsers: []string{"anony"}, StrategiesReload: 10 * time.Second, MaxFutureSkew: 10 * time.Minute},
		RecoCenter: recocenter.Config{FillTimeout: 600 * time.Millisecond, PopularNum: 100, PopularScan: 2000, SeenTTL: 24 * time.Hour, HistoryTimeout: 150 * time.Millisecond},
		Recall:     recall.Config{HotNum: 10, NewNum: 10, SourceLimit: 200, SimilarCacheTTL: time.Minute, SimilarCacheSize: 100_000},
		Sort:       sort.Config{ModelDir: ".cache/models", ReloadInterval: 10 * time.Second, FeatureCacheTTL: 5 * time.Minute, FeatureCacheSize: 200000},
		Cache:      cache.Config{Tier1Size: 100, RefillSize: 100, TTL: 30 * time.Minute, TTLJitter: 5 * time.Minute},
		Track:      track.Config{Topic: "click-trace", Timezone: "Local", MaxBatch: 10000},
		Nearline:   nearline.Config{Group: "nearline", HotHalfLife: 6 * time.Hour, CoolInterval: time.Minute, OnlineSimilar: 10, Boost: 3, BoostTTL: 30 * time.Minute, Parallel: 16, Counts: true, Readers: true},
		Clients: Clients{
			RecoCenter: Client{Addr: "127.0.0.1:10001", Timeout: 800 * time.Millisecond},
			Recall:     Client{Addr: "127.0.0.1:10002", Timeout: 300 * time.Millisecond},
			Sort:       Client{Addr: "127.0.0.1:10003", Timeout: 300 * time.Millisecond},
			Cache:      Client{Addr: "127.0.0.1:10004", Timeout: 200 * time.Millisecond},
		},
		Storage: Storage{
			Tables:   "embedded",
			Sets:     "embedded",
			Embedded: embedded.Config{Path: ".cache/reco.db"},
			HBase:    hbase.Config{ThriftAddr: "127.0.0.1:9090", PoolSize: 16, Timeout: time.Second, DialTimeout: time.Second, IdleTimeout: 30 * time.Second},
			Redis:    redisstore.Config{Addrs: []string{"127.0.0.1:6379"}, PoolSize: 32, DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond},
			Log: eventlog.Config{
				Backend:  "embedded",
				Embedded: eventlog.EmbeddedConfig{Dir: ".cache/log", SegmentBytes: 64 << 20},
				Kafka: eventlog.KafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Partitions: 8, ReplicationFactor: -1,
					Timeout: 5 * time.Second, DialTimeout: time.Second},
			},
		},
	}
}

// Load reads the YAML file at path (none if empty) over the defaults, applies the
// environment overrides and validates the result.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports the first invalid key.
func (c Config) Validate() error {
	if err := c.Server.Validate(); err != nil {
		return fmt.Errorf("invalid server config: %w", err)
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("invalid log config: %w", err)
	}
	if err := c.Clients.Validate(); err != nil {
		return fmt.Errorf("invalid clients config: %w", err)
	}
	if err := c.Routing.Validate(); err != nil {
		return fmt.Errorf("invalid routing config: %w", err)
	}
	if err := c.RecoCenter.Validate(); err != nil {
		return fmt.Errorf("invalid recocenter config: %w", err)
	}
	if err := c.Recall.Validate(); err != nil {
		return fmt.Errorf("invalid recall config: %w", err)
	}
	if err := c.Sort.Validate(); err != nil {
		return fmt.Errorf("invalid sort config: %w", err)
	}
	if err := c.Cache.Validate(); err != nil {
		return fmt.Errorf("invalid cache config: %w", err)
	}
	if err := c.Track.Validate(); err != nil {
		return fmt.Errorf("invalid track config: %w", err)
	}
	if err := c.Nearline.Validate(); err != nil {
		return fmt.Errorf("invalid nearline config: %w", err)
	}
	if err := c.Storage.Validate(); err != nil {
		return fmt.Errorf("invalid storage config: %w", err)
	}
	return nil
}

// Validate checks the server keys.
func (s Server) Validate() error {
	if err := validAddr("server.grpc_addr", s.GRPCAddr); err != nil {
		return err
	}
	if err := validAddr("server.metrics_addr", s.MetricsAddr); err != nil {
		return err
	}
	if s.HTTPAddr != "" {
		if err := validAddr("server.http_addr", s.HTTPAddr); err != nil {
			return err
		}
	}
	if s.LameDuck < 0 {
		return fmt.Errorf("server.lame_duck must be 0 or a positive duration such as 5s, got %v", s.LameDuck)
	}
	if s.MaxInflight < 0 || s.MaxInflight > maxInflight {
		return fmt.Errorf("server.max_inflight must be 0 (unlimited) or 1..%d, got %d", maxInflight, s.MaxInflight)
	}
	if s.PprofAddr != "" {
		if err := loopbackAddr("server.pprof_addr", s.PprofAddr); err != nil {
			return err
		}
	}
	if err := s.TLS.Validate(); err != nil {
		return fmt.Errorf("server.tls: %w", err)
	}
	if s.Authz.Enabled && s.TLS.ClientCAFile == "" && s.Authz.TokensDir == "" {
		return errors.New("server.authz.enabled needs a way to know callers: server.tls.client_ca_file (mutual TLS) or server.authz.tokens_dir")
	}
	if !s.Authz.Enabled && s.Authz.TokensDir != "" {
		return errors.New("server.authz.tokens_dir takes effect only with server.authz.enabled: true")
	}
	return positive("server.drain_timeout", s.DrainTimeout)
}

// loopbackAddr checks that addr is host:port on a loopback interface.
func loopbackAddr(key, addr string) error {
	if err := validAddr(key, addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s must be a loopback address such as 127.0.0.1:6060, got %q: profiles are never served to the network", key, addr)
	}
	return nil
}

// maxInflight bounds server.max_inflight: far above what one process can
// serve, it only catches a typo.
const maxInflight = 1 << 20

// Validate checks the log keys.
func (l Log) Validate() error {
	switch l.Level {
	case "debug", "info", "warn", "error":
		return nil
	}
	return fmt.Errorf("log.level must be debug, info, warn or error, got %q", l.Level)
}

// Validate checks every client.
func (c Clients) Validate() error {
	for name, cl := range map[string]Client{"recocenter": c.RecoCenter, "recall": c.Recall, "sort": c.Sort, "cache": c.Cache} {
		if err := validPeer("clients."+name+".addr", cl.Addr); err != nil {
			return err
		}
		if err := positive("clients."+name+".timeout", cl.Timeout); err != nil {
			return err
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("clients.tls: %w", err)
	}
	return nil
}

// Validate checks the backends chosen and their keys.
func (s Storage) Validate() error {
	switch s.Tables {
	case "embedded":
	case "hbase":
		if err := s.HBase.Validate(); err != nil {
			return fmt.Errorf("storage.hbase: %w", err)
		}
	default:
		return fmt.Errorf("storage.tables must be embedded or hbase, got %q", s.Tables)
	}
	switch s.Sets {
	case "embedded":
	case "redis":
		if err := s.Redis.Validate(); err != nil {
			return fmt.Errorf("storage.redis: %w", err)
		}
	default:
		return fmt.Errorf("storage.sets must be embedded or redis, got %q", s.Sets)
	}
	if s.Tables == "embedded" || s.Sets == "embedded" {
		if err := s.Embedded.Validate(); err != nil {
			return fmt.Errorf("storage.embedded: %w", err)
		}
	}
	if err := s.Log.Validate(); err != nil {
		return fmt.Errorf("storage.log: %w", err)
	}
	return nil
}

func validAddr(key, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s must be host:port, got %q: %v", key, addr, err)
	}
	return nil
}

// validPeer checks a peer's address: host:port, a comma-separated list of
// them (its replicas), or a gRPC target such as dns:///host:port (server.Dial).
func validPeer(key, addr string) error {
	if scheme, target, ok := strings.Cut(addr, ":///"); ok && scheme != "" {
		return validAddr(key, target)
	}
	for _, a := range strings.Split(addr, ",") {
		if err := validAddr(key, strings.TrimSpace(a)); err != nil {
			return err
		}
	}
	return nil
}

func positive(key string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s must be a positive duration such as 500ms, got %v", key, d)
	}
	return nil
}
