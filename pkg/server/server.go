// Package server builds the gRPC servers and clients every reco process uses, with
// the same plumbing in all-in-one and split mode: Prometheus metrics, zap logging,
// an in-flight limit, INVALID_ARGUMENT for requests that do not parse, panic
// recovery, health checking with a lame-duck drain, keepalive and reflection on
// the server side; per-hop deadlines, keepalive and metrics on the client side;
// OpenTelemetry spans on both when the process traces (pkg/tracing).
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/timeout"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/tracing"
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
	// endStreams cancels the streams in flight and every later one: at the
	// start of the graceful stop, so that a health Watch (which never ends by
	// itself) does not hold the stop until the drain timeout.
	streams    context.Context
	endStreams context.CancelFunc
	// unary is the server's chain of unary interceptors, and local the
	// methods registered, for the process's own calls (Local).
	unary grpc.UnaryServerInterceptor
	local registry
}

// Options are the server's limits (config.Server).
type Options struct {
	// MaxInflight bounds the calls handled at once; a call beyond it is answered
	// RESOURCE_EXHAUSTED at once. 0 is unlimited.
	MaxInflight int
	// TLS, when not nil, is the transport security of the network listeners
	// (certs.ServerConfig); nil serves plaintext. In-memory listeners never
	// handshake (see serverCredentials).
	TLS *tls.Config
	// Authz, when not nil, decides per method who may call (see authz.go); nil
	// lets every caller call every method.
	Authz *Authorizer
	// Tracer, when not nil, gives every call a span that continues its
	// caller's trace (pkg/tracing); nil traces nothing and costs nothing.
	Tracer trace.TracerProvider
}

// Keepalive of the server and of the clients of Dial. The two go together: a
// client pinging more often than the server's MinTime is cut off with GOAWAY
// "too_many_pings", and grpc-go's default MinTime is 5 minutes.
const (
	// clientPingEvery is how often a client pings an idle connection: a peer
	// that vanished without closing its TCP connection (a killed pod, a
	// dropped NAT entry) is noticed within clientPingEvery + clientPingTimeout,
	// and the client reconnects instead of failing calls on a dead connection.
	clientPingEvery   = 20 * time.Second
	clientPingTimeout = 5 * time.Second
	// minClientPing is what the server tolerates: half the clients' interval.
	minClientPing = clientPingEvery / 2
	// serverPingEvery and serverPingTimeout let the server free the
	// connections of clients that vanished.
	serverPingEvery   = time.Minute
	serverPingTimeout = 20 * time.Second
	// maxConnectionAge makes clients reconnect now and then (grpc-go adds
	// ±10% jitter), so that the replicas added by a scale-out get their share:
	// a gRPC connection otherwise sticks to one replica for ever.
	// maxConnectionAgeGrace lets the calls on an old connection finish.
	maxConnectionAge      = 5 * time.Minute
	maxConnectionAgeGrace = 15 * time.Second
)

// maxConcurrentStreams bounds the calls of one HTTP/2 connection (grpc-go's
// default is unlimited), so one client cannot hold unbounded server memory. It
// stays above max_inflight: one peer connection may carry all of a process's
// calls, and a call over the transport's limit waits in the client until its
// deadline, which is exactly the queueing the in-flight limit replaces with an
// immediate RESOURCE_EXHAUSTED.
func maxConcurrentStreams(maxInflight int) uint32 {
	return uint32(min(max(1024, 2*maxInflight), math.MaxInt32))
}

// New returns a server whose interceptors run in the order metrics → in-flight
// limit → logging → malformed-request check → recovery: a shed call, a request
// that does not parse and a recovered panic (codes.Internal) are all counted; a
// shed call is not logged one line each (that would add load when there is too
// much already).
func New(log *zap.Logger, reg prometheus.Registerer, opts Options) (*Server, error) {
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
	streams, endStreams := context.WithCancel(context.Background())
	srv := &Server{metrics: metrics, streams: streams, endStreams: endStreams}
	authzUnary, authzStream := grpc.UnaryServerInterceptor(passUnary), grpc.StreamServerInterceptor(passStream)
	if opts.Authz != nil {
		authzUnary, authzStream = opts.Authz.unary, opts.Authz.stream
	}
	unary := []grpc.UnaryServerInterceptor{
		metrics.UnaryServerInterceptor(),
		limitInflight(opts.MaxInflight),
		withLogFields,
		logging.UnaryServerInterceptor(zapLogger(log), logging.WithLogOnEvents(logging.FinishCall), logging.WithFieldsFromContext(fieldsFromContext)),
		// Who may call what, before the request is looked at: a refused
		// caller learns nothing of the method but that it may not call it.
		authzUnary,
		refuseMalformed,
		recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(onPanic)),
	}
	srv.unary = chainUnary(unary)
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = newServerCredentials(opts.TLS)
	}
	srv.Server = grpc.NewServer(
		grpc.Creds(creds),
		// The span is started before the first interceptor, so a shed, refused
		// or malformed call is in the trace with its status code too.
		tracing.Server(opts.Tracer),
		// A body that does not parse is INVALID_ARGUMENT, not Internal (see
		// codec.go; ForceServerCodecV2 is marked experimental in grpc-go, and
		// the test of malformed requests catches it changing).
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxConcurrentStreams(maxConcurrentStreams(opts.MaxInflight)),
		// Keepalive: see the constants above.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPing, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  serverPingEvery,
			Timeout:               serverPingTimeout,
			MaxConnectionAge:      maxConnectionAge,
			MaxConnectionAgeGrace: maxConnectionAgeGrace,
		}),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(
			metrics.StreamServerInterceptor(),
			srv.checkStream,
			logging.StreamServerInterceptor(zapLogger(log), logging.WithLogOnEvents(logging.FinishCall)),
			authzStream,
			recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(onPanic)),
		),
	)
	srv.Health = health.NewServer()
	healthpb.RegisterHealthServer(srv.Server, srv.Health)
	reflection.Register(srv.Server)
	return srv, nil
}

// chainUnary is the interceptors as one, the first outermost, as
// grpc.ChainUnaryInterceptor runs them.
func chainUnary(interceptors []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		var next func(i int) grpc.UnaryHandler
		next = func(i int) grpc.UnaryHandler {
			if i == len(interceptors) {
				return handler
			}
			return func(ctx context.Context, req any) (any, error) {
				return interceptors[i](ctx, req, info, next(i+1))
			}
		}
		return next(0)(ctx, req)
	}
}

// checkStream gives a stream a context that ends with the drain and answers
// its messages that do not parse.
func (s *Server) checkStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	return handler(srv, checkedStream{ServerStream: ss, ctx: ctx})
}

// ServeInProcess serves the process's own calls between its services (the
// bufconn listener of all-in-one mode): they are never shed by the in-flight
// limit, since the outside call that made them already holds a slot.
func (s *Server) ServeInProcess(lis net.Listener) error {
	return s.Serve(inProcessListener{lis})
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

// Drain stops the server in two steps. First the lame duck: health reports
// NOT_SERVING (for good: later status changes are ignored) while the server
// keeps accepting and serving calls for lameDuck, so that load balancers and
// clients watching health move away before anything is refused. Then the
// graceful stop: no new calls, streams (health Watch) are ended, and the calls
// in flight get timeout before the server stops hard.
func (s *Server) Drain(lameDuck, timeout time.Duration) {
	s.LameDuck(lameDuck)
	done := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(done)
	}()
	s.endStreams()
	select {
	case <-done:
	case <-time.After(timeout):
		s.Stop()
	}
}

// LameDuck is the first step of Drain on its own, for a process that has more
// to stop between it and the graceful stop (the HTTP gateway, whose calls go
// through this server): health reports NOT_SERVING, for good, while calls are
// still served for d. Drain after it repeats nothing but the wait it is given.
func (s *Server) LameDuck(d time.Duration) {
	s.Health.Shutdown()
	if d > 0 {
		time.Sleep(d)
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

// Dial returns a connection to a peer's replicas at addr (see balance.go).
// Every call on it carries a deadline of at most callTimeout, so no hop waits
// forever on a stuck peer. dialer, when not nil, replaces the network (the
// in-process connections of all-in-one mode). extra comes last and so wins:
// the peers' TLS (PeerTLS) and token (TokenCredentials), and the spans of a
// traced process (tracing.Client). breaker puts a circuit breaker in
// front of the peer: for callers with a fallback, to whom a dead peer should
// cost nothing; a caller without one is better served by the replicas that
// still answer than by a breaker that fails every call.
func Dial(addr string, callTimeout time.Duration, metrics *ClientMetrics, dialer func(context.Context, string) (net.Conn, error), breaker bool, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	target, opts := peerTarget(addr)
	interceptors := []grpc.UnaryClientInterceptor{metrics.UnaryClientInterceptor(), withUser}
	if breaker {
		interceptors = append(interceptors, peerBreaker(addr))
	}
	opts = append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Pings on idle connections find a peer that vanished without closing
		// its connection; within the server's enforcement policy (see the
		// constants above), or the server would cut the connection off.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: clientPingEvery, Timeout: clientPingTimeout, PermitWithoutStream: true}),
		grpc.WithChainUnaryInterceptor(append(interceptors, timeout.UnaryClientInterceptor(callTimeout))...),
		grpc.WithDefaultServiceConfig(serviceConfig),
	)
	if dialer != nil {
		opts = append(opts, grpc.WithContextDialer(dialer))
	}
	opts = append(opts, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
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
