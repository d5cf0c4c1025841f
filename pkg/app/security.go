package app

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
)

// security is what a process uses to say who it is and to know who calls it
// (DESIGN.md §10): the TLS of its listeners, the per-method policy of its
// server, how it dials its peers, and the operators' profiling listener. All
// of it is off by default, as `make run` wants.
type security struct {
	// tls is the listeners' TLS (gRPC, metrics, the HTTP gateway); nil:
	// plaintext.
	tls *tls.Config
	// authz enforces policy; nil: every caller may call every method.
	authz *server.Authorizer
	// peerOpts dial the peers this process does not run: TLS (clients.tls)
	// and the token (clients.token_file).
	peerOpts []grpc.DialOption
	// pprofLis serves Go's profiles on loopback (server.pprof_addr); nil:
	// none.
	pprofLis net.Listener
}

// openSecurity builds the process's security from its configuration. Files
// (certificates, keys, tokens) that do not load fail the start.
func (a *App) openSecurity() error {
	cfg := a.cfg
	var err error
	if a.sec.tls, err = certs.ServerConfig(cfg.Server.TLS, a.log); err != nil {
		return fmt.Errorf("server.tls: %w", err)
	}
	if cfg.Server.Authz.Enabled {
		if a.sec.authz, err = server.NewAuthorizer(policy, cfg.Server.Authz.TokensDir, a.log, a.reg); err != nil {
			return err
		}
		if cfg.Server.Authz.TokensDir != "" && a.sec.tls == nil {
			a.log.Warn("callers' tokens travel in plaintext: set server.tls.cert_file and key_file")
		}
	}
	peerTLS, err := certs.NewClient(cfg.Clients.TLS, a.log)
	if err != nil {
		return fmt.Errorf("clients.tls: %w", err)
	}
	if peerTLS != nil {
		a.sec.peerOpts = append(a.sec.peerOpts, grpc.WithTransportCredentials(server.PeerTLS(peerTLS)))
	}
	if cfg.Clients.TokenFile != "" {
		creds, err := server.TokenCredentials(cfg.Clients.TokenFile, a.log)
		if err != nil {
			return err
		}
		if peerTLS == nil {
			a.log.Warn("this process's token travels to its peers in plaintext: set clients.tls.enabled")
		}
		a.sec.peerOpts = append(a.sec.peerOpts, grpc.WithPerRPCCredentials(creds))
	}
	if cfg.Server.PprofAddr != "" {
		if a.sec.pprofLis, err = net.Listen("tcp", cfg.Server.PprofAddr); err != nil {
			return fmt.Errorf("listen on server.pprof_addr: %w", err)
		}
		a.closers = append(a.closers, ignoreClosed(a.sec.pprofLis.Close))
	}
	return nil
}

// metricsServer serves /metrics and nothing else, with bounded reads and
// writes: in Kubernetes every pod can reach the port, so a slow client must not
// hold a connection, and profiles are never here (pprofServer).
func (a *App) metricsServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(a.log.With(zap.String("listener", "metrics"))),
	}
}

// pprofServer serves Go's profiles on server.pprof_addr, loopback only
// (config.Server.Validate). Its write timeout leaves room for a CPU profile or
// trace of up to a minute and a half (pprof refuses longer ones).
func (a *App) pprofServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      100 * time.Second,
		ErrorLog:          zap.NewStdLog(a.log.With(zap.String("listener", "pprof"))),
	}
}

// PprofAddr is the address profiles are served on, "" when off.
func (a *App) PprofAddr() string {
	if a.sec.pprofLis == nil {
		return ""
	}
	return a.sec.pprofLis.Addr().String()
}
