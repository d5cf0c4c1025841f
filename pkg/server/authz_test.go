package server

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
)

const probe = "/test.Probe/Do"

// serveAuthz serves the probe with opts on a free port and returns its address.
func serveAuthz(t *testing.T, opts Options) string {
	t.Helper()
	s, err := New(zap.NewNop(), prometheus.NewRegistry(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s.RegisterService(testService(func(context.Context) error { return nil }), struct{}{})
	s.MarkServing()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }() // until the Stop; a failure shows in the calls
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func dialAuthz(t *testing.T, addr string, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, extra...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func writeToken(t *testing.T, dir, caller, tok string) string {
	t.Helper()
	path := filepath.Join(dir, caller)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokensAuthorizePerMethod(t *testing.T) {
	tokens := t.TempDir()
	writeToken(t, tokens, "recocenter", "recocenter-token-0123456789")
	writeToken(t, tokens, "routing", "routing-token-0123456789")
	writeToken(t, tokens, "weak", "short") // refused, and so unknown
	reg := prometheus.NewRegistry()
	az, err := NewAuthorizer(Policy{probe: {"recocenter"}}, tokens, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveAuthz(t, Options{Authz: az})

	clientTokens := t.TempDir()
	withToken := func(tok string) grpc.DialOption {
		creds, err := TokenCredentials(writeToken(t, clientTokens, "token", tok), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		return grpc.WithPerRPCCredentials(creds)
	}
	for _, tt := range []struct {
		name   string
		conn   *grpc.ClientConn
		want   codes.Code
		reason string
	}{
		{"no token", dialAuthz(t, addr), codes.Unauthenticated, "no_identity"},
		{"a token of nobody", dialAuthz(t, addr, withToken("not-a-known-token-at-all")), codes.Unauthenticated, "unknown_token"},
		{"routing's token", dialAuthz(t, addr, withToken("routing-token-0123456789")), codes.PermissionDenied, "caller_not_allowed"},
		{"recocenter's token", dialAuthz(t, addr, withToken("recocenter-token-0123456789")), codes.OK, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.conn.Invoke(context.Background(), probe, &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != tt.want {
				t.Fatalf("call: %v, want %v", err, tt.want)
			}
			if tt.reason != "" {
				if got := testutil.ToFloat64(az.denied.WithLabelValues(probe, tt.reason)); got != 1 {
					t.Errorf("reco_authz_denied_total{reason=%q} = %v, want 1", tt.reason, got)
				}
			}
			// Health stays open to every caller.
			if _, err := healthpb.NewHealthClient(tt.conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Errorf("health: %v, want served", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tokens, "weak")); err != nil {
		t.Fatal(err)
	}
}

func TestMethodWithoutPolicyIsClosed(t *testing.T) {
	az, err := NewAuthorizer(Policy{}, "", zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	conn := dialAuthz(t, serveAuthz(t, Options{Authz: az}))
	if err := conn.Invoke(context.Background(), probe, &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("call of a method without policy: %v, want PermissionDenied", err)
	}
	open, err := NewAuthorizer(Policy{probe: {Anyone}}, "", zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	conn = dialAuthz(t, serveAuthz(t, Options{Authz: open}))
	if err := conn.Invoke(context.Background(), probe, &emptypb.Empty{}, &emptypb.Empty{}); err != nil {
		t.Errorf("call of a public method: %v, want served", err)
	}
}

func TestMutualTLSIdentity(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	srvLeaf := ca.Leaf(t, "cache", "")
	tlsCfg, err := certs.ServerConfig(certs.Server{CertFile: srvLeaf.CertFile, KeyFile: srvLeaf.KeyFile, ClientCAFile: ca.File}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	az, err := NewAuthorizer(Policy{probe: {"recocenter"}}, "", zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveAuthz(t, Options{TLS: tlsCfg, Authz: az})

	as := func(signer *certstest.CA, service string) grpc.DialOption {
		return grpc.WithTransportCredentials(PeerTLS(ca.Client(t, signer, service)))
	}
	for _, tt := range []struct {
		name string
		opt  grpc.DialOption
		want codes.Code
	}{
		{"plaintext", grpc.WithTransportCredentials(insecure.NewCredentials()), codes.Unavailable},
		{"TLS without a certificate", as(nil, ""), codes.Unauthenticated},
		{"a certificate of another CA", as(certstest.NewCA(t, "other CA"), "recocenter"), codes.Unavailable},
		{"routing's certificate", as(ca, "routing"), codes.PermissionDenied},
		{"recocenter's certificate", as(ca, "recocenter"), codes.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialAuthz(t, addr, tt.opt)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := conn.Invoke(ctx, probe, &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != tt.want {
				t.Errorf("call: %v, want %v", err, tt.want)
			}
		})
	}
}
