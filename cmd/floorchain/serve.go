package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
)

// popRotate is the back hop's Redis round trip, comparable to a cache pop: it
// pops ARGV[1] ids off the top of the set and scores them below its bottom,
// so the set keeps its size however many calls come.
var popRotate = redis.NewScript(`
local out = redis.call('ZPOPMAX', KEYS[1], ARGV[1])
local low = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) or 0
for i = 1, #out, 2 do
  redis.call('ZADD', KEYS[1], low - (i + 1) / 2, out[i])
end
return out
`)

// Sizes of the back hop's sorted sets and of each pop: a reader's cache and a
// page of ids.
const (
	setSize = 100
	popSize = 10
)

// record is the middle hop's log record, shaped as a refresh's served ids.
type record struct {
	User      string  `json:"user"`
	Channel   int32   `json:"channel"`
	Timestamp int64   `json:"time_stamp"`
	IDs       []int64 `json:"ids"`
}

// hop is one server of the chain; its Check is the chain's one method.
type hop struct {
	healthpb.UnimplementedHealthServer
	role  string
	next  healthpb.HealthClient // front and middle
	log   eventlog.Log          // middle
	topic string
	rdb   *redis.Client // back
	keys  int
}

// Check passes the call down the chain and answers SERVING once every hop
// below did its part.
func (h *hop) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch h.role {
	case "front":
		return h.next.Check(ctx, req)
	case "middle":
		resp, err := h.next.Check(ctx, req)
		if err != nil {
			return nil, err
		}
		ids := make([]int64, popSize)
		for i := range ids {
			ids[i] = int64(100000 + i)
		}
		b, err := json.Marshal(record{User: req.GetService(), Timestamp: time.Now().UnixMilli(), IDs: ids})
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode record: %v", err)
		}
		if err := h.log.Append(ctx, h.topic, eventlog.Entry{Key: req.GetService(), Value: b}); err != nil {
			return nil, status.Errorf(codes.Unavailable, "append to %s: %v", h.topic, err)
		}
		return resp, nil
	default: // back
		if err := popRotate.Run(ctx, h.rdb, []string{h.key(req.GetService())}, popSize).Err(); err != nil {
			return nil, status.Errorf(codes.Unavailable, "pop: %v", err)
		}
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
	}
}

// key is the sorted set of the reader named name.
func (h *hop) key(name string) string {
	f := fnv.New32a()
	f.Write([]byte(name))
	return setKey(int(f.Sum32() % uint32(h.keys)))
}

func setKey(i int) string { return "floorchain:" + strconv.Itoa(i) }

// seed fills the back hop's sorted sets.
func seed(ctx context.Context, rdb *redis.Client, keys int) error {
	pipe := rdb.Pipeline()
	for k := range keys {
		zs := make([]redis.Z, setSize)
		for i := range zs {
			zs[i] = redis.Z{Score: float64(setSize - i), Member: strconv.Itoa(100000 + i)}
		}
		pipe.Del(ctx, setKey(k))
		pipe.ZAdd(ctx, setKey(k), zs...)
		if pipe.Len() >= 200 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// serve runs one hop until SIGTERM or SIGINT.
func serve(args []string) error {
	fs := flag.NewFlagSet("floorchain serve", flag.ContinueOnError)
	role := fs.String("role", "", "front, middle or back")
	listen := fs.String("listen", "127.0.0.1:11001", "address to serve on")
	next := fs.String("next", "", "the next hop's address (front, middle)")
	kafka := fs.String("kafka", "", "Kafka brokers, comma-separated (middle; default: storage.log.kafka.brokers of the configuration)")
	topic := fs.String("topic", "floorchain", "Kafka topic of the middle hop's records")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis address (back)")
	keys := fs.Int("keys", 1000, "sorted sets of the back hop: readers' caches")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h := &hop{role: *role, topic: *topic, keys: max(*keys, 1)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if err := cleanups[i](); err != nil {
				fmt.Fprintln(os.Stderr, "floorchain:", err)
			}
		}
	}()
	switch *role {
	case "front", "middle":
		if *next == "" {
			return fmt.Errorf("--role %s needs --next", *role)
		}
		conn, err := grpc.NewClient(*next, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		cleanups = append(cleanups, conn.Close)
		h.next = healthpb.NewHealthClient(conn)
	case "back":
		h.rdb = redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: config.Default().Storage.Redis.PoolSize})
		cleanups = append(cleanups, h.rdb.Close)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := seed(sctx, h.rdb, h.keys)
		cancel()
		if err != nil {
			return fmt.Errorf("seed redis %s: %w", *redisAddr, err)
		}
	default:
		return fmt.Errorf("--role %q: want front, middle or back", *role)
	}
	if *role == "middle" {
		l, closeLog, err := openLog(*kafka)
		if err != nil {
			return err
		}
		cleanups = append(cleanups, closeLog)
		h.log = l
	}

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	return nil
}

// openLog opens the suite's Kafka log as its processes configure it (the
// defaults and the RECO_* environment), on brokers when given.
func openLog(brokers string) (eventlog.Log, func() error, error) {
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		return nil, nil, err
	}
	lc := cfg.Storage.Log
	lc.Backend = "kafka"
	if brokers != "" {
		lc.Kafka.Brokers = strings.Split(brokers, ",")
	}
	l, closeLog, err := eventlog.Open(lc, zap.NewNop())
	if err != nil {
		return nil, nil, fmt.Errorf("open the kafka log: %w", err)
	}
	return l, closeLog, nil
}
