package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs/certstest"
)

func serve(t *testing.T, cfg *tls.Config) (string, <-chan error) { return certstest.Serve(t, cfg) }

func client(t *testing.T, c certs.Client) *certs.ClientTLS {
	t.Helper()
	cli, err := certs.NewClient(c, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// handshake connects with cli and returns the server's leaf certificate.
func handshake(t *testing.T, addr string, cli *certs.ClientTLS) (*x509.Certificate, error) {
	t.Helper()
	nc, err := cli.Dialer(&net.Dialer{})(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = nc.Close() }() // the handshake's outcome is all that is wanted
	c := nc.(*tls.Conn)
	// TLS 1.3: the server's verdict on the client certificate arrives with
	// the first read.
	if err := c.SetReadDeadline(timeNowPlus()); err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte("x")); err != nil {
		return nil, err
	}
	if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

func TestServerCertificateRotatesWithoutRestart(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	dir := t.TempDir()
	first := ca.Leaf(t, "routing", dir)
	srv, err := certs.ServerConfig(certs.Server{CertFile: first.CertFile, KeyFile: first.KeyFile}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, srv)
	cli := client(t, certs.Client{Enabled: true, CAFile: ca.File})
	got, err := handshake(t, addr, cli)
	if err != nil || got.SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("first handshake: %v, serial %v; want the first certificate", err, got)
	}

	second := ca.Leaf(t, "routing", dir)
	got, err = handshake(t, addr, cli)
	if err != nil || got.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after rotation: %v, serial %v; want the rotated certificate %v", err, got.SerialNumber, second.Cert.SerialNumber)
	}

	// A half-written rotation (the key of another certificate) keeps the one
	// in force.
	other := ca.Leaf(t, "other", t.TempDir())
	b, _ := os.ReadFile(other.KeyFile)
	if err := os.WriteFile(second.KeyFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = handshake(t, addr, cli)
	if err != nil || got.SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a broken rotation: %v; want the previous certificate still served", err)
	}
}

func TestClientVerifiesTheServer(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	leaf := ca.Leaf(t, "cache", "")
	srv, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, srv)

	for _, tt := range []struct {
		name    string
		cfg     certs.Client
		wantErr string
	}{
		{"another CA", certs.Client{Enabled: true, CAFile: certstest.NewCA(t, "other CA").File}, "unknown authority"},
		{"another name", certs.Client{Enabled: true, CAFile: ca.File, ServerName: "recall"}, "not recall"},
		{"the right CA and name", certs.Client{Enabled: true, CAFile: ca.File, ServerName: "cache"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := handshake(t, addr, client(t, tt.cfg))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("handshake: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestMutualTLSFollowsTheClientCAFile(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	leaf := ca.Leaf(t, "cache", "")
	caDir := t.TempDir()
	clientCA := caDir + "/clients.crt"
	copyFile(t, ca.File, clientCA)
	srv, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile, ClientCAFile: clientCA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, errs := serve(t, srv)

	signed := func(t *testing.T, signer *certstest.CA) *certs.ClientTLS {
		l := signer.Leaf(t, "recocenter", "")
		return client(t, certs.Client{Enabled: true, CAFile: ca.File, CertFile: l.CertFile, KeyFile: l.KeyFile})
	}
	if _, err := handshake(t, addr, signed(t, ca)); err != nil || <-errs != nil {
		t.Fatalf("client of the CA: %v, want accepted", err)
	}
	other := certstest.NewCA(t, "other CA")
	if _, err := handshake(t, addr, signed(t, other)); err == nil {
		t.Error("client of another CA: accepted, want refused")
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("server's handshake with a client of another CA: %v, want unknown authority", err)
	}

	// The client CA file is replaced by the other CA: its clients are in, the
	// first CA's are out, without a restart.
	copyFile(t, other.File, clientCA)
	if _, err := handshake(t, addr, signed(t, other)); err != nil || <-errs != nil {
		t.Errorf("client of the new CA after rotation: %v, want accepted", err)
	}
	if _, err := handshake(t, addr, signed(t, ca)); err == nil {
		t.Error("client of the old CA after rotation: accepted, want refused")
	}
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("server's handshake with a client of the old CA after rotation: %v, want unknown authority", err)
	}
}

func TestRequireClientCert(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	leaf := ca.Leaf(t, "cache", "")
	srv, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile, ClientCAFile: ca.File, RequireClientCert: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, errs := serve(t, srv)
	_, _ = handshake(t, addr, client(t, certs.Client{Enabled: true, CAFile: ca.File}))
	if err := <-errs; err == nil {
		t.Error("a client without a certificate was accepted; require_client_cert must refuse it")
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"server cert without key", certs.Server{CertFile: "a"}.Validate()},
		{"server client CA without TLS", certs.Server{ClientCAFile: "a"}.Validate()},
		{"server require without CA", certs.Server{CertFile: "a", KeyFile: "b", RequireClientCert: true}.Validate()},
		{"client cert without key", certs.Client{Enabled: true, CertFile: "a"}.Validate()},
		{"client files without enabled", certs.Client{CAFile: "a"}.Validate()},
	} {
		if tt.err == nil {
			t.Errorf("%s: Validate = nil, want an error", tt.name)
		}
	}
	if err := (certs.Server{}).Validate(); err != nil {
		t.Errorf("off: %v", err)
	}
	if cfg, err := certs.ServerConfig(certs.Server{}, nil); cfg != nil || err != nil {
		t.Errorf("ServerConfig of an empty Server = %v, %v; want nil, nil (plaintext)", cfg, err)
	}
	if _, err := certs.ServerConfig(certs.Server{CertFile: "/nonexistent.crt", KeyFile: "/nonexistent.key"}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing files: %v, want not exist at start-up", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, statErr := os.Stat(to)
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if statErr == nil { // move the time on: a rewrite within the clock's granularity is a change too
		next := fi.ModTime().Add(1e9)
		_ = os.Chtimes(to, next, next)
	}
}

func timeNowPlus() time.Time { return time.Now().Add(200 * time.Millisecond) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestClientFollowsItsCAFile(t *testing.T) {
	oldCA, newCA := certstest.NewCA(t, "old CA"), certstest.NewCA(t, "new CA")
	leaf := newCA.Leaf(t, "cache", "")
	srv, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, srv)
	caFile := t.TempDir() + "/ca.crt"
	copyFile(t, oldCA.File, caFile)
	cli := client(t, certs.Client{Enabled: true, CAFile: caFile})
	if _, err := handshake(t, addr, cli); err == nil {
		t.Fatal("a server of another CA was accepted")
	}
	copyFile(t, newCA.File, caFile)
	if _, err := handshake(t, addr, cli); err != nil {
		t.Errorf("after the CA file was rotated: %v, want the server accepted", err)
	}
}
