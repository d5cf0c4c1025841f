package server

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/proto"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
)

// rawCodec sends and receives message bodies as they are: a client that can
// put any bytes on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return proto.Name }

// Bodies that do not parse.
var (
	garbage = []byte{0xff, 0xff, 0xff, 0xff}
	// badUTF8 is field 1 (HealthCheckRequest.service, a proto3 string) holding
	// the bytes ff fe.
	badUTF8 = []byte{0x0a, 0x02, 0xff, 0xfe}
)

func TestMalformedRequestIsInvalidArgument(t *testing.T) {
	reg := prometheus.NewRegistry()
	called := false
	conn := serve(t, reg, func(context.Context) error { called = true; return nil }, time.Second)
	ctx := context.Background()
	for _, tc := range []struct {
		name, method string
		body         []byte
	}{
		{"garbage to a service", "/test.Probe/Do", garbage},
		{"field 0 to a service", "/test.Probe/Do", []byte{0x00, 0x01}},
		{"garbage to health", "/grpc.health.v1.Health/Check", garbage},
		{"invalid UTF-8 in a string", "/grpc.health.v1.Health/Check", badUTF8},
	} {
		var out []byte
		err := conn.Invoke(ctx, tc.method, tc.body, &out, grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "malformed request") {
			t.Errorf("%s: err = %v, want InvalidArgument: malformed request", tc.name, err)
		}
	}
	if called {
		t.Error("the handler ran on a request that does not parse")
	}

	// A stream (health Watch) refuses it too.
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/grpc.health.v1.Health/Watch", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(badUTF8); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseSend()
	var out []byte
	if err := st.RecvMsg(&out); status.Code(err) != codes.InvalidArgument {
		t.Errorf("health Watch of invalid UTF-8: err = %v, want InvalidArgument", err)
	}

	// Well-formed calls are unaffected.
	if err := conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}); err != nil || !called {
		t.Errorf("well-formed call: %v (handler ran: %v)", err, called)
	}
	var empty []byte // an empty body is a valid empty message
	if err := conn.Invoke(ctx, "/test.Probe/Do", empty, &out, grpc.ForceCodecV2(rawCodec{})); err != nil {
		t.Errorf("empty body: %v", err)
	}
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health Check = %v, %v", resp.GetStatus(), err)
	}

	// The refusals are counted like any other answer.
	want := `
# HELP reco_grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE reco_grpc_server_handled_total counter
reco_grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 2
reco_grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Do",grpc_service="test.Probe",grpc_type="unary"} 2
reco_grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="Watch",grpc_service="grpc.health.v1.Health",grpc_type="server_stream"} 1
reco_grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1
reco_grpc_server_handled_total{grpc_code="OK",grpc_method="Do",grpc_service="test.Probe",grpc_type="unary"} 2
`
	if err := eventually(func() error {
		return testutil.GatherAndCompare(reg, strings.NewReader(want), "reco_grpc_server_handled_total")
	}); err != nil {
		t.Error(err)
	}
}

// eventually retries check for a while: the server counts a call when its
// handler returns, which may be just after the client got the answer.
func eventually(check func() error) error {
	var err error
	for range 100 {
		if err = check(); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// blocker is a handler that holds every call until release, and tells when a
// call has entered.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) do(ctx context.Context) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestOverloadIsShedAtOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBlocker()
	_, conn := serveWith(t, reg, Options{MaxInflight: 2}, b.do, 10*time.Second)
	ctx := context.Background()
	call := func() error { return conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}) }

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { errs[i] = call() })
	}
	for range errs {
		select {
		case <-b.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the first two calls never reached the handler")
		}
	}

	begin := time.Now()
	err := call()
	if status.Code(err) != codes.ResourceExhausted || status.Convert(err).Message() != "server overloaded: 2 calls in flight" {
		t.Errorf("third call: %v, want ResourceExhausted: server overloaded: 2 calls in flight", err)
	}
	if took := time.Since(begin); took > time.Second {
		t.Errorf("third call took %v: it was queued, not shed", took)
	}
	// Health is never shed.
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health Check while saturated = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	close(b.release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d in flight: %v, want it to complete", i+1, err)
		}
	}
	// A slot freed is a slot again.
	if err := call(); err != nil {
		t.Errorf("call after the load: %v", err)
	}
	if err := eventually(func() error {
		return testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reco_grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE reco_grpc_server_handled_total counter
reco_grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1
reco_grpc_server_handled_total{grpc_code="OK",grpc_method="Do",grpc_service="test.Probe",grpc_type="unary"} 3
reco_grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="Do",grpc_service="test.Probe",grpc_type="unary"} 1
`), "reco_grpc_server_handled_total")
	}); err != nil {
		t.Errorf("the shed call is not counted: %v", err)
	}
}

func TestInProcessCallsAreNotShed(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := newBlocker()
	s, conn := serveWith(t, reg, Options{MaxInflight: 1}, b.do, 10*time.Second)
	inproc := bufconn.Listen(1 << 20)
	go func() { _ = s.ServeInProcess(inproc) }() // until the Stop; a failure shows in the calls
	local, err := grpc.NewClient("passthrough:///inprocess", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return inproc.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	ctx := context.Background()

	outside := make(chan error, 1)
	go func() { outside <- conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}) }()
	<-b.entered // the one slot is taken
	if err := conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second outside call: %v, want ResourceExhausted", err)
	}
	inside := make(chan error, 1)
	go func() { inside <- local.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}) }()
	select {
	case <-b.entered:
	case err := <-inside:
		t.Fatalf("in-process call while the slot is taken: %v, want it admitted", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the in-process call never reached the handler")
	}
	close(b.release)
	if err := <-outside; err != nil {
		t.Errorf("outside call: %v", err)
	}
	if err := <-inside; err != nil {
		t.Errorf("in-process call: %v", err)
	}
}

func TestDrainKeepsServingThroughTheLameDuck(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, conn := serveWith(t, reg, Options{}, func(context.Context) error { return nil }, 5*time.Second)
	s.MarkServing()
	ctx := context.Background()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first status = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	const lameDuck, timeout = 300 * time.Millisecond, 5 * time.Second
	begin := time.Now()
	drained := make(chan struct{})
	go func() {
		s.Drain(lameDuck, timeout)
		close(drained)
	}()
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("status on drain = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	if err := conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
		t.Errorf("call in the lame duck: %v, want it served", err)
	}
	if time.Since(begin) >= lameDuck {
		t.Fatal("the test was too slow to call within the lame duck")
	}
	select {
	case <-drained:
		t.Fatal("Drain returned within the lame duck")
	default:
	}

	<-drained
	if took := time.Since(begin); took < lameDuck || took > lameDuck+timeout/2 {
		t.Errorf("Drain took %v; want the lame duck (%v) and not the drain timeout: the Watch must not hold the stop", took, lameDuck)
	}
	if _, err := watch.Recv(); err == nil {
		t.Error("the health Watch goes on after the stop")
	}
	if err := conn.Invoke(ctx, "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}); err == nil {
		t.Error("a call after the drain was served")
	}
}
