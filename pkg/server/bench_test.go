package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// BenchmarkHop measures one unary call through the full interceptor chains
// (metrics, logging, recovery; client metrics and deadline), in-process over
// bufconn as all-in-one mode does, and over loopback TCP as split mode does.
func BenchmarkHop(b *testing.B) {
	for _, mode := range []string{"inprocess", "loopback"} {
		b.Run(mode, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			s, err := New(zap.NewNop(), reg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			s.RegisterService(testService(func(context.Context) error { return nil }), struct{}{})
			var lis net.Listener
			var dialer func(context.Context, string) (net.Conn, error)
			target := "passthrough:///bench"
			if mode == "inprocess" {
				bl := bufconn.Listen(1 << 20)
				lis, dialer = bl, func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }
			} else {
				if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				target = lis.Addr().String()
			}
			go func() { _ = s.Serve(lis) }() // until the Stop; a failure shows in the calls
			defer s.Stop()
			cm, err := NewClientMetrics(reg)
			if err != nil {
				b.Fatal(err)
			}
			conn, err := Dial(target, time.Second, cm, dialer, true)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			call := func() error {
				return conn.Invoke(context.Background(), "/test.Probe/Do", &emptypb.Empty{}, &emptypb.Empty{}, grpc.WaitForReady(true))
			}
			if err := call(); err != nil { // connect outside the timing
				b.Fatal(err)
			}
			var lat storagetest.Latencies
			for b.Loop() {
				start := time.Now()
				if err := call(); err != nil {
					b.Fatal(err)
				}
				lat.Since(start)
			}
			lat.Report(b)
		})
	}
}
