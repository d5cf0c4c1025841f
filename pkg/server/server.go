// Package server builds the gRPC servers and clients every reco process uses, with
// the same plumbing in all-in-one and split mode: Prometheus metrics, zap logging,
// panic recovery, health checking and reflection on the server side; per-hop
// deadlines and metrics on the client side.
package server

import (
	"context"
	"fmt"
	"net"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/timeout"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Namespace prefixes every metric the suite exports.
const Namespace = "reco"

// latencyBuckets spans a cache hit (sub-millisecond) to a slow recall (seconds).
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Server is a gRPC server with health checking and reflection registered.
type Server struct {
	*grpc.Server
	// Health reports SERVING once started and NOT_SERVING from the start of a
	// drain, so load balancers stop sending before the listener closes.
	Health  *health.Server
	metrics *grpcprom.ServerMetrics
}

// New returns a server whose interceptors run in the order metrics → logging →
// recovery: a recovered panic is logged and counted as codes.Internal like any
// other failure.
func New(log *zap.Logger, reg prometheus.Registerer) (*Server, error) {
	metrics := grpcprom.NewServerMetrics(
		grpcprom.WithServerCounterOptions(grpcprom.WithNamespace(Namespace)),
		grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramNamespace(Namespace),
			grpcprom.WithHistogramBuckets(latencyBuckets),
		),
	)
	panics := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "grpc_server_panics_recovered_total",
		Help:      "Panics recovered in gRPC handlers and answered with codes.Internal.",
	})
	for _, c := range []prometheus.Collector{metrics, panics} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register server metrics: %w", err)
		}
	}
	onPanic := func(ctx context.Context, p any) error {
		panics.Inc()
		log.Error("panic in handler", zap.Any("panic", p), zap.Stack("stack"))
		return status.Error(codes.Internal, "internal error")
	}
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			metrics.UnaryServerInterceptor(),
			withLogFields,
			logging.UnaryServerInterceptor(zapLogger(log), logging.WithLogOnEvents(logging.FinishCall), logging.WithFieldsFromContext(fieldsFromContext)),
			recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(onPanic)),
		),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			logging.StreamServerInterceptor(zapLogger(log), logging.WithLogOnEvents(logging.FinishCall)),
			recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(onPanic)),
		),
	)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return &Server{Server: s, Health: hs, metrics: metrics}, nil
}

// MarkServing initialises the per-method metrics and reports every registered
// service, and the server as a whole (""), as SERVING.
func (s *Server) MarkServing() {
	s.metrics.InitializeMetrics(s.Server)
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
}

// Drain reports NOT_SERVING, then stops gracefully, cutting in-flight calls off
// after timeout.
func (s *Server) Drain(timeout time.Duration) {
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
	}
}

// ClientMetrics is the client-side RPC metrics of one process, shared by all its
// peer connections.
type ClientMetrics = grpcprom.ClientMetrics

// NewClientMetrics registers client-side RPC metrics with reg.
func NewClientMetrics(reg prometheus.Registerer) (*ClientMetrics, error) {
	m := grpcprom.NewClientMetrics(
		grpcprom.WithClientCounterOptions(grpcprom.WithNamespace(Namespace)),
		grpcprom.WithClientHandlingTimeHistogram(
			grpcprom.WithHistogramNamespace(Namespace),
			grpcprom.WithHistogramBuckets(latencyBuckets),
		),
	)
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("register client metrics: %w", err)
	}
	return m, nil
}

// Dial returns a connection to a peer at target. Every call on it carries a
// deadline of at most callTimeout, so no hop waits forever on a stuck peer. dialer,
// when not nil, replaces the network (the in-process connections of all-in-one
// mode).
func Dial(target string, callTimeout time.Duration, metrics *ClientMetrics, dialer func(context.Context, string) (net.Conn, error)) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(
			metrics.UnaryClientInterceptor(),
			timeout.UnaryClientInterceptor(callTimeout),
		),
	}
	if dialer != nil {
		opts = append(opts, grpc.WithContextDialer(dialer))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}

// zapLogger adapts zap to the middleware's logging interface.
func zapLogger(l *zap.Logger) logging.Logger {
	l = l.WithOptions(zap.AddCallerSkip(1))
	return logging.LoggerFunc(func(_ context.Context, lvl logging.Level, msg string, fields ...any) {
		fs := make([]zap.Field, 0, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			key, _ := fields[i].(string)
			fs = append(fs, zap.Any(key, fields[i+1]))
		}
		switch lvl {
		case logging.LevelDebug:
			l.Debug(msg, fs...)
		case logging.LevelInfo:
			l.Info(msg, fs...)
		case logging.LevelWarn:
			l.Warn(msg, fs...)
		default:
			l.Error(msg, fs...)
		}
	})
}
