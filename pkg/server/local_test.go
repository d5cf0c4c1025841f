package server

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// local is a Local connection to a server whose /test.Probe/Do runs do.
func local(t *testing.T, reg *prometheus.Registry, opts Options, do func(ctx context.Context) error, callTimeout time.Duration) grpc.ClientConnInterface {
	t.Helper()
	s, err := New(zap.NewNop(), reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := NewClientMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	conn := s.Local("inprocess-probe", callTimeout, cm, true)
	s.RegisterService(testService(do), struct{}{}) // after Local: looked up per call
	return conn
}

func TestLocalCallGoesThroughTheServersInterceptors(t *testing.T) {
	reg := prometheus.NewRegistry()
	type seen struct {
		user     []string
		outgoing bool
	}
	got := make(chan seen, 1)
	// MaxInflight 1 and two calls at once: the process's own calls are never shed.
	release := make(chan struct{})
	conn := local(t, reg, Options{MaxInflight: 1}, func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		o, _ := metadata.FromOutgoingContext(ctx)
		out := o.Len() > 0
		select {
		case got <- seen{md.Get("x-who"), out}:
		default:
		}
		<-release
		return nil
	}, time.Second)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-who", "u1")
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}) }()
	}
	s := <-got
	time.Sleep(20 * time.Millisecond)
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("local call: %v (the process's own calls must not be shed)", err)
		}
	}
	if len(s.user) != 1 || s.user[0] != "u1" {
		t.Errorf("handler's incoming x-who = %v, want [u1]: the caller's outgoing metadata", s.user)
	}
	if s.outgoing {
		t.Error("the caller's outgoing metadata leaked into the handler's own calls")
	}
	if n, err := testutil.GatherAndCount(reg, "reco_grpc_server_handled_total"); err != nil || n == 0 {
		t.Errorf("reco_grpc_server_handled_total has %d series (%v): the server's metrics did not count the call", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "reco_grpc_client_handled_total"); err != nil || n == 0 {
		t.Errorf("reco_grpc_client_handled_total has %d series (%v): the client's metrics did not count the call", n, err)
	}
}

func TestLocalCallStatusCodes(t *testing.T) {
	t.Run("panic is Internal", func(t *testing.T) {
		conn := local(t, prometheus.NewRegistry(), Options{}, func(context.Context) error { panic("boom") }, time.Second)
		if err := conn.Invoke(context.Background(), "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.Internal {
			t.Errorf("code = %v, want Internal", status.Code(err))
		}
	})
	t.Run("a handler's status is the caller's", func(t *testing.T) {
		conn := local(t, prometheus.NewRegistry(), Options{}, func(context.Context) error {
			return status.Error(codes.InvalidArgument, "no")
		}, time.Second)
		if err := conn.Invoke(context.Background(), "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("code = %v, want InvalidArgument", status.Code(err))
		}
	})
	t.Run("the hop deadline cuts a late handler", func(t *testing.T) {
		done := make(chan struct{})
		conn := local(t, prometheus.NewRegistry(), Options{}, func(context.Context) error {
			<-done // ignores its context
			return nil
		}, 50*time.Millisecond)
		defer close(done)
		begin := time.Now()
		err := conn.Invoke(context.Background(), "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("code = %v, want DeadlineExceeded", status.Code(err))
		}
		if took := time.Since(begin); took > 2*time.Second {
			t.Errorf("the call took %v: the caller waited for the handler past its deadline", took)
		}
	})
	t.Run("unknown method", func(t *testing.T) {
		conn := local(t, prometheus.NewRegistry(), Options{}, func(context.Context) error { return nil }, time.Second)
		if err := conn.Invoke(context.Background(), "/test.Probe/Nope", &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.Unimplemented {
			t.Errorf("code = %v, want Unimplemented", status.Code(err))
		}
		if _, err := conn.NewStream(context.Background(), &grpc.StreamDesc{}, "/test.Probe/Do"); status.Code(err) != codes.Unimplemented {
			t.Errorf("stream: code = %v, want Unimplemented", status.Code(err))
		}
	})
}

func TestMoveIntoCarriesEveryField(t *testing.T) {
	from := wrapperspb.String("hello")
	out := wrapperspb.String("stale")
	moveInto(out, from)
	if out.GetValue() != "hello" {
		t.Errorf("moved answer = %q, want hello", out.GetValue())
	}
	empty := &wrapperspb.StringValue{}
	moveInto(out, empty)
	if out.GetValue() != "" {
		t.Errorf("moving an empty answer left %q: what the reply held before must go", out.GetValue())
	}
}
