// Package certs builds the TLS configurations of every listener and every
// outbound client of a reco process from PEM files, and re-reads those files
// when they change on disk, so a rotated certificate (cert-manager renewing a
// Kubernetes Secret, an operator replacing a file) is used from the next
// handshake on, without a restart.
//
// Why handshake-time reading rather than a watcher: a handshake is the only
// moment a certificate is needed, a stat of two files is far cheaper than the
// handshake itself, and nothing has to be started or stopped. A Secret volume
// swaps its files through a symlink; os.Stat follows it, so the swap shows as a
// new modification time.
//
// Why the CA files are read at handshakes too: crypto/tls verifies against a
// CertPool fixed when the tls.Config is built, so a rotated CA would need a
// restart. A listener therefore checks a client's chain itself
// (VerifyConnection) against the CA file as it is now, with the checks
// crypto/tls makes (the chain to a root of the file, client authentication key
// usage); a client builds a tls.Config per connection (ClientTLS.Config) with
// the CA file as it is now, and crypto/tls verifies the server, its name
// included.
//
// A file that does not load (a key written before its certificate, a truncated
// copy) keeps the previous certificate in force and is logged; the next
// handshake tries again. At start-up a file that does not load is an error.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Server is the TLS of a listener. It is on when CertFile is set.
type Server struct {
	// CertFile and KeyFile are the listener's certificate (PEM, the chain up to
	// the CA after the leaf) and its private key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, turns on mutual TLS: a client certificate is
	// asked for and, when one is given, must chain to a CA of this file. Whom
	// it names decides what the caller may call (server.authz).
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses, at the handshake, a client without a
	// certificate. Leave it off where one listener also serves the public API
	// or health checks from callers without certificates.
	RequireClientCert bool `yaml:"require_client_cert"`
}

// Enabled reports whether the listener serves TLS.
func (s Server) Enabled() bool { return s.CertFile != "" }

// Validate checks that the keys go together (whether the files load is checked
// when the listener is built).
func (s Server) Validate() error {
	switch {
	case (s.CertFile == "") != (s.KeyFile == ""):
		return errors.New("cert_file and key_file go together: set both or neither")
	case !s.Enabled() && (s.ClientCAFile != "" || s.RequireClientCert):
		return errors.New("client_ca_file and require_client_cert need cert_file and key_file: mutual TLS is TLS first")
	case s.RequireClientCert && s.ClientCAFile == "":
		return errors.New("require_client_cert needs client_ca_file, the CA that client certificates are checked against")
	}
	return nil
}

// Client is the TLS of an outbound connection (peers, Redis, Kafka, the HBase
// gateway). It is on when Enabled is set.
type Client struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is the CA the server's certificate must chain to; empty: the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate presented for mutual
	// TLS; empty: none.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry; empty: the
	// host that was dialled.
	ServerName string `yaml:"server_name"`
}

// Validate checks that the keys go together.
func (c Client) Validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("cert_file and key_file go together: set both or neither")
	case !c.Enabled && (c.CAFile != "" || c.CertFile != "" || c.ServerName != ""):
		return errors.New("ca_file, cert_file, key_file and server_name take effect only with enabled: true")
	}
	return nil
}

// ServerConfig is the tls.Config of a listener: its certificate and, with
// ClientCAFile, the verification of client certificates, both re-read when
// their files change. It returns nil when s is not enabled.
func ServerConfig(s Server, log *zap.Logger) (*tls.Config, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !s.Enabled() {
		return nil, nil
	}
	pair, err := newKeyPair(s.CertFile, s.KeyFile, log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return pair.current(), nil
		},
	}
	if s.ClientCAFile == "" {
		return cfg, nil
	}
	roots, err := newCAFile(s.ClientCAFile, log)
	if err != nil {
		return nil, err
	}
	// crypto/tls only asks for the certificate; VerifyConnection checks it
	// against the CA file as it is at this handshake.
	cfg.ClientAuth = tls.RequestClientCert
	if s.RequireClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // RequireAnyClientCert has refused it already when required
		}
		return verifyClient(cs.PeerCertificates, roots.current())
	}
	return cfg, nil
}

// ClientTLS is the TLS of the outbound connections of one client (the peers,
// Redis, Kafka, the HBase gateway): the CA the servers' certificates must chain
// to and the client certificate, both re-read when their files change.
type ClientTLS struct {
	roots      *caFile // nil: the system's roots
	pair       *keyPair
	serverName string
}

// NewClient returns the TLS of c's connections, or nil when c is not enabled
// (plaintext).
func NewClient(c Client, log *zap.Logger) (*ClientTLS, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled {
		return nil, nil
	}
	t := &ClientTLS{serverName: c.ServerName}
	if c.CAFile != "" {
		roots, err := newCAFile(c.CAFile, log)
		if err != nil {
			return nil, err
		}
		t.roots = &roots
	}
	if c.CertFile != "" {
		pair, err := newKeyPair(c.CertFile, c.KeyFile, log)
		if err != nil {
			return nil, err
		}
		t.pair = &pair
	}
	return t, nil
}

// Config is the tls.Config of one connection to the server at host (a name or
// an IP address, which its certificate must carry; the configured server_name
// wins over it), with the CA file as it is now. crypto/tls verifies the
// server; a config is built per connection because a tls.Config's roots are
// fixed (see the package comment).
func (t *ClientTLS) Config(host string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName(host)}
	if t.roots != nil {
		cfg.RootCAs = t.roots.current()
	}
	if t.pair != nil {
		pair := t.pair
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return pair.current(), nil
		}
	}
	return cfg
}

// ServerName is the name the certificate of the server at host must carry:
// the configured server_name, else host.
func (t *ClientTLS) ServerName(host string) string {
	if t.serverName != "" {
		return t.serverName
	}
	return host
}

// Dialer returns a dial function (go-redis's Options.Dialer, franz-go's
// kgo.Dialer) that connects with d and completes a TLS handshake with the
// server at addr before it returns, both bounded by ctx.
func (t *ClientTLS) Dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return t.Handshake(ctx, nc, addr)
	}
}

// Handshake runs the client side of a TLS handshake on nc, a connection to
// addr (host:port), and returns the TLS connection; on failure nc is closed.
func (t *ClientTLS) Handshake(ctx context.Context, nc net.Conn, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	tc := tls.Client(nc, t.Config(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close() // the handshake's error is the one to report
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// verifyClient checks a client's chain as crypto/tls would: the leaf chains
// to roots through the certificates sent after it, is valid now and is meant
// for client authentication.
func verifyClient(chain []*x509.Certificate, roots *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("tls: client certificate %q: %w", chain[0].Subject.CommonName, err)
	}
	return nil
}

// stamp is what tells that a file changed: its modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// watched is one or more files loaded together into a T, loaded again when any
// of them changed since the last load. A failed reload keeps the previous T.
type watched[T any] struct {
	paths []string
	load  func() (T, error)
	log   *zap.Logger

	mu     sync.Mutex
	stamps []stamp
	val    T
	// failed is the stamps of the last failed reload, and lastErr its error,
	// so that a broken or missing file is logged once, not at every handshake.
	failed  []stamp
	lastErr string
}

func newWatched[T any](load func() (T, error), log *zap.Logger, paths ...string) (*watched[T], error) {
	w := &watched[T]{paths: paths, load: load, log: log}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	stamps, err := w.stat()
	if err != nil {
		return nil, err
	}
	if w.val, err = load(); err != nil {
		return nil, err
	}
	w.stamps = stamps
	return w, nil
}

func (w *watched[T]) stat() ([]stamp, error) {
	out := make([]stamp, len(w.paths))
	for i, p := range w.paths {
		s, err := stampOf(p)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// current is the value of the files as they are now.
func (w *watched[T]) current() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamps, err := w.stat()
	if err == nil && (equalStamps(stamps, w.stamps) || equalStamps(stamps, w.failed)) {
		return w.val
	}
	if err == nil {
		var v T
		if v, err = w.load(); err == nil {
			w.val, w.stamps, w.failed, w.lastErr = v, stamps, nil, ""
			w.log.Info("tls files reloaded", zap.Strings("files", w.paths))
			return w.val
		}
		w.failed = stamps
	}
	if err.Error() != w.lastErr {
		w.lastErr = err.Error()
		w.log.Error("tls files changed but do not load; the previous ones stay in force", zap.Strings("files", w.paths), zap.Error(err))
	}
	return w.val
}

func equalStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

// keyPair is a certificate and its key, re-read when either file changes.
type keyPair struct{ *watched[*tls.Certificate] }

func newKeyPair(certFile, keyFile string, log *zap.Logger) (keyPair, error) {
	w, err := newWatched(func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load certificate %s and key %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, log, certFile, keyFile)
	if err != nil {
		return keyPair{}, fmt.Errorf("tls: %w", err)
	}
	return keyPair{w}, nil
}

// caFile is a pool of CA certificates, re-read when its file changes.
type caFile struct{ *watched[*x509.CertPool] }

func newCAFile(path string, log *zap.Logger) (caFile, error) {
	w, err := newWatched(func() (*x509.CertPool, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
		}
		return pool, nil
	}, log, path)
	if err != nil {
		return caFile{}, fmt.Errorf("tls: %w", err)
	}
	return caFile{w}, nil
}
