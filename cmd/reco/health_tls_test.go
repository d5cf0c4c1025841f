package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
)

// TestHealthCommandOverTLS: with the service's environment (server.tls,
// clients.tls) the check speaks mutual TLS, as the Kubernetes exec probes need.
func TestHealthCommandOverTLS(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	leaf := ca.Leaf(t, "sort", "")
	cfg, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile, ClientCAFile: ca.File, RequireClientCert: true}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }() // until the Stop; a failure shows in the calls
	defer srv.Stop()
	addr := lis.Addr().String()

	if err := run([]string{"health", "--addr", addr, "--timeout", "500ms"}, &bytes.Buffer{}); err == nil {
		t.Error("a plaintext check of a TLS server succeeded")
	}
	t.Setenv("RECO_SERVER_TLS_CERT_FILE", leaf.CertFile)
	t.Setenv("RECO_CLIENTS_TLS_CA_FILE", ca.File)
	t.Setenv("RECO_CLIENTS_TLS_CERT_FILE", leaf.CertFile)
	t.Setenv("RECO_CLIENTS_TLS_KEY_FILE", leaf.KeyFile)
	for _, name := range []string{"", "sort"} {
		var out bytes.Buffer
		if err := run([]string{"health", "--addr", addr, "--server-name", name}, &out); err != nil || strings.TrimSpace(out.String()) != "SERVING" {
			t.Errorf("reco health --server-name %q over mutual TLS = %v, %q; want SERVING", name, err, out.String())
		}
	}
	if err := run([]string{"health", "--addr", addr, "--server-name", "recall", "--timeout", "500ms"}, &bytes.Buffer{}); err == nil {
		t.Error("a server whose certificate does not name recall passed as recall")
	}
}
