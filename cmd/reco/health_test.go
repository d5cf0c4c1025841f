package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHealthCommand(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }() // until the Stop; a failure shows in the calls
	defer srv.Stop()
	addr := lis.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	hs.SetServingStatus("UserRecommend", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("reco.sort.v1.SortService", healthpb.HealthCheckResponse_NOT_SERVING)

	for _, tc := range []struct {
		name    string
		args    []string
		env     string // RECO_SERVER_GRPC_ADDR
		wantErr string
	}{
		{name: "server serving", args: []string{"--addr", addr}},
		{name: "named service serving", args: []string{"--addr", addr, "--service", "UserRecommend"}},
		{name: "address from the configuration, wildcard host", env: "0.0.0.0:" + port},
		{name: "named service not serving", args: []string{"--addr", addr, "--service", "reco.sort.v1.SortService"}, wantErr: "NOT_SERVING"},
		{name: "unknown service", args: []string{"--addr", addr, "--service", "nope"}, wantErr: "NotFound"},
		{name: "nothing listens", args: []string{"--addr", freeAddr(t), "--timeout", "300ms"}, wantErr: "DeadlineExceeded"},
		{name: "no fixed port", args: []string{"--addr", "127.0.0.1:0"}, wantErr: "no fixed port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("RECO_SERVER_GRPC_ADDR", tc.env)
			}
			var out bytes.Buffer
			err := run(append([]string{"health"}, tc.args...), &out)
			switch {
			case tc.wantErr == "" && (err != nil || strings.TrimSpace(out.String()) != "SERVING"):
				t.Errorf("reco health %v = %v, output %q; want SERVING", tc.args, err, out.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("reco health %v = %v; want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}

	hs.Shutdown() // what a draining server reports
	if err := run([]string{"health", "--addr", addr}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Errorf("reco health on a draining server = %v, want NOT_SERVING", err)
	}
}
