package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"

	"google.golang.org/grpc/credentials"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
)

// TLS of the listeners and of the peer connections. The tls.Configs come from
// pkg/certs (files re-read when they change); here they become gRPC transport
// credentials, and an HTTP listener (metrics, the HTTP/JSON gateway) is served
// with the same certificate through ServeHTTP.

// ServeHTTP serves srv on lis until it is shut down: over TLS with cfg when cfg
// is not nil, plaintext otherwise. cfg is the process's listener TLS
// (certs.ServerConfig of server.tls), the one Options.TLS gives the gRPC
// server, so every listener of a process serves the same certificate. A client certificate is asked
// for only when cfg asks for one, and HTTP handlers see it unverified unless
// the CA of server.tls.client_ca_file verified it at the handshake.
func ServeHTTP(srv *http.Server, lis net.Listener, cfg *tls.Config) error {
	if cfg == nil {
		return srv.Serve(lis)
	}
	srv.TLSConfig = cfg.Clone()
	return srv.ServeTLS(lis, "", "")
}

// serverCredentials are TLS with cfg on every network listener. A connection
// of an in-memory listener (bufconn: the calls between the services of one
// process, ServeInProcess, and the HTTP gateway's calls) never leaves the
// process and is dialled plaintext by its client, so it has no handshake; that
// says nothing of who may call what: the gateway's calls are authorized as any
// outside call is (only ServeInProcess's are the process's own).
type serverCredentials struct {
	credentials.TransportCredentials
}

func newServerCredentials(cfg *tls.Config) credentials.TransportCredentials {
	return serverCredentials{credentials.NewTLS(cfg)}
}

func (c serverCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if conn.LocalAddr().Network() == "bufconn" {
		return conn, inMemoryAuth{}, nil
	}
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c serverCredentials) Clone() credentials.TransportCredentials {
	return serverCredentials{c.TransportCredentials.Clone()}
}

// inMemoryAuth is the AuthInfo of a connection of an in-memory listener.
type inMemoryAuth struct{}

func (inMemoryAuth) AuthType() string { return "in-memory" }

// PeerTLS is the transport credentials of connections to peers with t's
// certificates and CA (a nil t is plaintext). Each handshake takes the files as
// they are then (certs.ClientTLS.Config), and the peer's certificate must name
// the host dialled (clients.*.addr) unless clients.tls.server_name says
// otherwise.
func PeerTLS(t *certs.ClientTLS) credentials.TransportCredentials {
	return peerCredentials{t: t}
}

type peerCredentials struct{ t *certs.ClientTLS }

func (c peerCredentials) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority
	}
	// grpc-go verifies the name it is given as the authority, whatever the
	// config's ServerName says: give it the one to verify.
	return credentials.NewTLS(c.t.Config(host)).ClientHandshake(ctx, c.t.ServerName(host), conn)
}

func (c peerCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errClientOnly
}

func (c peerCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c peerCredentials) Clone() credentials.TransportCredentials { return c }

// OverrideServerName is deprecated in grpc-go and unused: the name comes from
// clients.tls.server_name.
func (c peerCredentials) OverrideServerName(string) error { return nil }

var errClientOnly = errors.New("peer credentials are for clients only")
