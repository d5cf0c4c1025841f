package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// testService registers /test.Probe/Do, whose behaviour the test chooses.
func testService(do func(ctx context.Context) error) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "test.Probe",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Do",
			Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) { return &emptypb.Empty{}, do(ctx) }
				return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Probe/Do"}, h)
			},
		}},
	}
}

func serve(t *testing.T, reg *prometheus.Registry, do func(ctx context.Context) error, callTimeout time.Duration) *grpc.ClientConn {
	t.Helper()
	_, conn := serveWith(t, reg, Options{}, do, callTimeout)
	return conn
}

// serveWith is serve with the server's options, also returning the server.
func serveWith(t *testing.T, reg *prometheus.Registry, opts Options, do func(ctx context.Context) error, callTimeout time.Duration) (*Server, *grpc.ClientConn) {
	t.Helper()
	s, err := New(zap.NewNop(), reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterService(testService(do), struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }() // until the Stop; a failure shows in the calls
	t.Cleanup(s.Stop)
	cm, err := NewClientMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(lis.Addr().String(), callTimeout, cm, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return s, conn
}

func TestPanicBecomesInternalAndIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	conn := serve(t, reg, func(context.Context) error { panic("boom") }, time.Second)
	err := conn.Invoke(context.Background(), "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Internal {
		t.Errorf("code = %v, want Internal", status.Code(err))
	}
	if strings.Contains(status.Convert(err).Message(), "boom") {
		t.Errorf("message %q leaks the panic value to the caller", status.Convert(err).Message())
	}
	if n, err := testutil.GatherAndCount(reg, "reco_grpc_server_panics_recovered_total"); err != nil || n != 1 {
		t.Errorf("panics series = %d, %v", n, err)
	}
	want := `
# HELP reco_grpc_server_panics_recovered_total Panics recovered in gRPC handlers and answered with codes.Internal.
# TYPE reco_grpc_server_panics_recovered_total counter
reco_grpc_server_panics_recovered_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "reco_grpc_server_panics_recovered_total"); err != nil {
		t.Error(err)
	}
}

func TestEveryCallCarriesTheHopDeadline(t *testing.T) {
	reg := prometheus.NewRegistry()
	sawDeadline := make(chan bool, 1)
	conn := serve(t, reg, func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		sawDeadline <- ok
		<-ctx.Done()
		return ctx.Err()
	}, 50*time.Millisecond)

	begin := time.Now()
	err := conn.Invoke(context.Background(), "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("code = %v, want DeadlineExceeded from the 50ms hop deadline", status.Code(err))
	}
	if !<-sawDeadline {
		t.Error("the server saw no deadline: it was not propagated")
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("call took %v: the hop deadline did not cut it", took)
	}
	// The server's handled counter records the call once the handler returns,
	// which may be just after the client gave up; its code is DeadlineExceeded or
	// Canceled depending on which side noticed first.
	n := 0
	for range 100 {
		if n, _ = testutil.GatherAndCount(reg, "reco_grpc_server_handled_total"); n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n == 0 {
		t.Error("reco_grpc_server_handled_total has no series after the call")
	}
}

func TestDialSkipsAPeerThatKeepsFailing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there
	metrics, err := NewClientMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dial(addr, time.Second, metrics, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for i := range 10 {
		start := time.Now()
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d to a dead peer: %v, want Unavailable", i, err)
		}
		if i >= 5 && (!strings.Contains(err.Error(), "circuit breaker open") || time.Since(start) > 50*time.Millisecond) {
			t.Errorf("call %d after 5 failures: %v in %v, want the breaker to refuse it at once", i, err, time.Since(start))
		}
	}
}
