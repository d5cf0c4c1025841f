// Package certstest makes certificates at test time: a CA and leaf
// certificates signed by it, written as PEM files, so that TLS tests need no
// key material in the repository.
package certstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
)

// CA is a test certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// File is the CA certificate as a PEM file.
	File string
}

// Leaf is a certificate signed by a CA, with its files.
type Leaf struct {
	Cert              *x509.Certificate
	CertFile, KeyFile string
}

// NewCA makes a CA named name and writes its certificate into a temporary
// directory of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	cert, der := sign(t, tmpl, tmpl, key, key)
	ca := &CA{Cert: cert, key: key, File: filepath.Join(t.TempDir(), "ca.crt")}
	writePEM(t, ca.File, "CERTIFICATE", der)
	return ca
}

// Leaf makes a certificate for service, usable by a server and a client: CN and
// URI SAN spiffe://toutiao-reco/<service> name it, and it is valid for
// localhost and 127.0.0.1. The files are written into dir (a new temporary
// directory when empty) as <service>.crt and <service>.key, replacing what is
// there: calling it again with the same dir rotates the certificate.
func (ca *CA) Leaf(t testing.TB, service, dir string) Leaf {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: service},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost", service},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		URIs:         []*url.URL{{Scheme: "spiffe", Host: "toutiao-reco", Path: "/" + service}},
	}
	cert, der := sign(t, tmpl, ca.Cert, key, ca.key)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := Leaf{Cert: cert, CertFile: filepath.Join(dir, service+".crt"), KeyFile: filepath.Join(dir, service+".key")}
	// Key first, then the certificate, as a careless rotation would: a reader
	// in between sees a pair that does not match and must keep the old one.
	writePEM(t, l.KeyFile, "PRIVATE KEY", keyDER)
	writePEM(t, l.CertFile, "CERTIFICATE", der)
	return l
}

// sign makes the certificate of tmpl for key's public half, signed by
// parent's key.
func sign(t testing.TB, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, der
}

// Client is the TLS of a client that trusts ca and, unless signer is nil,
// presents a certificate of signer naming caller.
func (ca *CA) Client(t testing.TB, signer *CA, caller string) *certs.ClientTLS {
	t.Helper()
	c := certs.Client{Enabled: true, CAFile: ca.File}
	if signer != nil {
		l := signer.Leaf(t, caller, "")
		c.CertFile, c.KeyFile = l.CertFile, l.KeyFile
	}
	cli, err := certs.NewClient(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// NewServer serves TLS on a free loopback port (see Serve) with a certificate
// for name, signed by a new CA, which it returns: what a client must trust.
func NewServer(t testing.TB, name string) (ca *CA, addr string, handshakes <-chan error) {
	t.Helper()
	ca = NewCA(t, "test CA")
	leaf := ca.Leaf(t, name, "")
	cfg, err := certs.ServerConfig(certs.Server{CertFile: leaf.CertFile, KeyFile: leaf.KeyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, handshakes = Serve(t, cfg)
	return ca, addr, handshakes
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writePEM replaces path with one PEM block, and moves its modification time
// forward: a rewrite within the file system's time granularity must still show
// as a change.
func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	var prev time.Time
	if fi, err := os.Stat(path); err == nil {
		prev = fi.ModTime()
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if !prev.IsZero() {
		next := time.Now()
		if !next.After(prev) {
			next = prev.Add(time.Second)
		}
		if err := os.Chtimes(path, next, next); err != nil {
			t.Fatal(err)
		}
	}
}

// Serve accepts TLS connections with cfg on a free loopback port until the
// test ends, reading each until the client closes it; every handshake's
// result (nil when it succeeded) is sent on handshakes.
func Serve(t testing.TB, cfg *tls.Config) (addr string, handshakes <-chan error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() }) // the test is over: nothing waits on it
	errs := make(chan error, 16)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, cfg)
				select {
				case errs <- tc.Handshake():
				default:
				}
				_, _ = io.Copy(io.Discard, tc)
				_ = tc.Close() // the client has gone; the handshake's result was sent
			}()
		}
	}()
	return lis.Addr().String(), errs
}
