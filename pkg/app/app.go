// Package app runs the services a process hosts: it opens the stores they need,
// connects each to its peers (in-process when the peer runs here, over the
// network otherwise), serves them on one gRPC server (and the HTTP/JSON routes
// of those that have any on server.http_addr, through that server) and drains
// on shutdown.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/toutiao-reco/toutiao-reco/pkg/buildinfo"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/gateway"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/tracing"
)

// deps is what one module is built from.
type deps struct {
	module string
	// declared are the peers the module declares: the only ones peer gives.
	declared []string
	cfg      config.Config
	log      *zap.Logger
	reg      prometheus.Registerer
	stores   Stores
	conns    map[string]grpc.ClientConnInterface
	// err is the first wiring mistake register made (a peer it did not declare).
	err error
	// work collects the module's background work; the App runs it.
	work []background
}

// logger is the logger of one service: five services in one process stay
// distinguishable in the logs.
func (d *deps) logger(service string) *zap.Logger { return d.log.With(zap.String("service", service)) }

// peer is the connection to a peer the module declares. Asking for one it does
// not declare is a start-up error naming both, not a nil connection that panics
// on the first call.
func (d *deps) peer(name string) grpc.ClientConnInterface {
	if !slices.Contains(d.declared, name) && d.err == nil {
		d.err = fmt.Errorf("module %s calls %s, which it does not declare as a peer", d.module, name)
	}
	return d.conns[name]
}

// background hands work to the process's lifecycle: it runs while the process
// serves and is stopped on drain.
func (d *deps) background(work background) { d.work = append(d.work, work) }

// App is one reco process.
type App struct {
	cfg     config.Config
	log     *zap.Logger
	targets []string
	reg     *prometheus.Registry
	srv     *server.Server
	// inproc carries the calls between services of this process: a real gRPC
	// connection without a socket, so deadlines, interceptors and status codes
	// behave as in split mode.
	inproc     *bufconn.Listener
	lis        net.Listener
	metricsLis net.Listener
	// gateway serves the HTTP/JSON routes of the targets on httpLis (nil when
	// no target has any or server.http_addr is empty). Its calls reach srv
	// through gatewayLis: in memory, but served as the public listener is, so
	// an HTTP call is limited, counted and logged as a gRPC call is.
	gateway    *http.Server
	httpLis    net.Listener
	gatewayLis *bufconn.Listener
	// sec is the TLS, the per-method policy and the profiling listener
	// (security.go).
	sec security
	// stores are the stores this process opened (nil for a role no target
	// needs).
	stores Stores
	// tracer traces the process's servers, peer connections and HTTP gateway
	// (tracing.go); nil when tracing is off.
	tracer trace.TracerProvider
	// work is the modules' background work, run by Run.
	work    []background
	closers []func() error
}

// New opens what targets need and registers them; Run serves them.
func New(ctx context.Context, cfg config.Config, log *zap.Logger, targets []string, opts ...Option) (_ *App, err error) {
	// a is not the named result: a failed New returns nil, and the deferred
	// close must still see what was opened.
	a := &App{cfg: cfg, log: log, targets: targets, reg: prometheus.NewRegistry(), inproc: bufconn.Listen(1 << 20)}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if err := a.openTracing(ctx, opts); err != nil {
		return nil, err
	}
	if a.lis, err = net.Listen("tcp", cfg.Server.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen on server.grpc_addr: %w", err)
	}
	a.closers = append(a.closers, ignoreClosed(a.lis.Close))
	if a.metricsLis, err = net.Listen("tcp", cfg.Server.MetricsAddr); err != nil {
		return nil, fmt.Errorf("listen on server.metrics_addr: %w", err)
	}
	a.closers = append(a.closers, ignoreClosed(a.metricsLis.Close))
	if err := a.openGateway(ctx); err != nil {
		return nil, err
	}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge(buildinfo.Get()))
	if err := a.openSecurity(); err != nil {
		return nil, err
	}
	if a.srv, err = server.New(log, a.reg, server.Options{MaxInflight: cfg.Server.MaxInflight, TLS: a.sec.tls, Authz: a.sec.authz, Tracer: a.tracer}); err != nil {
		return nil, err
	}

	var roles Role
	for _, t := range targets {
		roles |= modules[t].roles
	}
	stores, closeStores, err := OpenStores(ctx, cfg.Storage, roles, a.log, a.reg)
	if err != nil {
		return nil, err
	}
	a.stores = stores
	a.closers = append(a.closers, closeStores)
	conns, err := a.dialPeers()
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		d := &deps{module: t, declared: modules[t].peers, cfg: cfg, log: log, reg: a.reg, stores: stores, conns: conns}
		if err := modules[t].register(a.srv, d); err != nil {
			return nil, fmt.Errorf("start %s: %w", t, err)
		}
		if d.err != nil {
			return nil, fmt.Errorf("start %s: %w", t, d.err)
		}
		a.work = append(a.work, d.work...)
	}
	return a, nil
}

// dialPeers connects to every peer the targets declare: in-process when this
// process runs the peer, at its configured address otherwise. An in-process
// peer is called directly (server.Local), unless the process traces: then
// through an in-memory gRPC connection, whose instrumentation gives each hop
// its spans.
func (a *App) dialPeers() (map[string]grpc.ClientConnInterface, error) {
	clientMetrics, err := server.NewClientMetrics(a.reg)
	if err != nil {
		return nil, err
	}
	conns := map[string]grpc.ClientConnInterface{}
	for _, t := range a.targets {
		for _, p := range modules[t].peers {
			if conns[p] != nil {
				continue
			}
			c, err := a.client(p)
			if err != nil {
				return nil, err
			}
			local := slices.Contains(a.targets, p)
			if local && a.tracer == nil {
				conns[p] = a.srv.Local("inprocess-"+p, c.Timeout, clientMetrics, !modules[p].noFallback)
				continue
			}
			target, dialer, opts := c.Addr, (func(context.Context, string) (net.Conn, error))(nil), a.sec.peerOpts
			if local {
				// In-process: no socket, so no TLS, and the server knows the
				// call is the process's own.
				target = "passthrough:///inprocess-" + p
				dialer = func(ctx context.Context, _ string) (net.Conn, error) { return a.inproc.DialContext(ctx) }
				opts = nil
			}
			opts = append(slices.Clip(opts), tracing.Client(a.tracer))
			conn, err := server.Dial(target, c.Timeout, clientMetrics, dialer, !modules[p].noFallback, opts...)
			if err != nil {
				return nil, fmt.Errorf("connect %s to %s: %w", t, p, err)
			}
			conns[p] = conn
			a.closers = append(a.closers, conn.Close)
		}
	}
	return conns, nil
}

// openGateway listens on server.http_addr for the HTTP/JSON routes of the
// targets, when any target has routes and the key is set.
func (a *App) openGateway(ctx context.Context) error {
	var routes []gateway.Routes
	for _, t := range a.targets {
		routes = append(routes, modules[t].http...)
	}
	if len(routes) == 0 || a.cfg.Server.HTTPAddr == "" {
		return nil
	}
	var err error
	if a.httpLis, err = net.Listen("tcp", a.cfg.Server.HTTPAddr); err != nil {
		return fmt.Errorf("listen on server.http_addr: %w", err)
	}
	a.closers = append(a.closers, ignoreClosed(a.httpLis.Close))
	a.gatewayLis = bufconn.Listen(1 << 20)
	a.closers = append(a.closers, ignoreClosed(a.gatewayLis.Close))
	conn, err := gateway.Dial(func(ctx context.Context, _ string) (net.Conn, error) { return a.gatewayLis.DialContext(ctx) }, tracing.Client(a.tracer))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, conn.Close)
	h, err := gateway.NewHandler(ctx, conn, routes...)
	if err != nil {
		return err
	}
	a.gateway = gateway.NewServer(tracing.HTTP(h, a.tracer))
	return nil
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.lis.Addr().String() }

// MetricsAddr is the address /metrics is served on.
func (a *App) MetricsAddr() string { return a.metricsLis.Addr().String() }

// HTTPAddr is the address the HTTP/JSON gateway listens on, "" when this
// process serves none.
func (a *App) HTTPAddr() string {
	if a.httpLis == nil {
		return ""
	}
	return a.httpLis.Addr().String()
}

// ignoreClosed makes closing an already closed listener (the server closes its
// listeners on stop) harmless.
func ignoreClosed(close func() error) func() error {
	return func() error {
		if err := close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
}

// client is where peer is reached and the deadline of each call to it.
func (a *App) client(peer string) (config.Client, error) {
	switch peer {
	case RecoCenter:
		return a.cfg.Clients.RecoCenter, nil
	case Recall:
		return a.cfg.Clients.Recall, nil
	case Sort:
		return a.cfg.Clients.Sort, nil
	case Cache:
		return a.cfg.Clients.Cache, nil
	}
	return config.Client{}, fmt.Errorf("no clients.* config for peer %q", peer)
}

// Run serves until ctx is cancelled (SIGTERM or SIGINT in main), then drains:
// health reports NOT_SERVING while calls are still served for the lame duck
// (server.lame_duck), then the server stops accepting calls and those in flight
// get the drain timeout; last the connections and stores are closed in reverse
// order of opening.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	metricsSrv, pprofSrv := a.metricsServer(), a.pprofServer()

	a.srv.MarkServing()
	a.log.Info("serving", zap.Strings("targets", a.targets), zap.String("grpc_addr", a.GRPCAddr()), zap.String("metrics_addr", a.MetricsAddr()), zap.String("http_addr", a.HTTPAddr()))
	a.reportEmptyStore(ctx)

	g, gctx := errgroup.WithContext(ctx)
	for _, work := range a.work {
		// gctx ends on SIGTERM (or when anything here fails), when the lame
		// duck starts: background work (file watchers) stops with it, and the
		// plan and models in force serve until the end.
		g.Go(func() error { return work(gctx) })
	}
	g.Go(func() error { return a.srv.Serve(a.lis) })
	g.Go(func() error { return a.srv.ServeInProcess(a.inproc) })
	g.Go(func() error { return serveHTTP(metricsSrv, a.metricsLis, a.sec.tls) })
	if a.sec.pprofLis != nil {
		g.Go(func() error { return serveHTTP(pprofSrv, a.sec.pprofLis, nil) })
	}
	if a.gateway != nil {
		g.Go(func() error { return a.srv.Serve(a.gatewayLis) })
		g.Go(func() error { return serveHTTP(a.gateway, a.httpLis, a.sec.tls) })
	}
	g.Go(func() error {
		<-gctx.Done()
		// The lame duck is for a stop that was asked for; when something here
		// failed, nothing is gained by serving on.
		lameDuck := a.cfg.Server.LameDuck
		if ctx.Err() == nil {
			lameDuck = 0
		}
		a.log.Info("draining", zap.Duration("lame_duck", lameDuck), zap.Duration("timeout", a.cfg.Server.DrainTimeout))
		if a.gateway != nil {
			// HTTP clients are asked to reconnect (Connection: close) through
			// the lame duck, so that they move away as gRPC clients do.
			a.gateway.SetKeepAlivesEnabled(false)
		}
		a.srv.LameDuck(lameDuck)
		// One drain timeout for both: the gateway's calls go through the gRPC
		// server, so they finish before it stops.
		deadline := time.Now().Add(a.cfg.Server.DrainTimeout)
		a.drainGateway(deadline)
		a.srv.Drain(0, time.Until(deadline))
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = pprofSrv.Close() // a profile in progress is not worth waiting for
		return metricsSrv.Shutdown(sctx)
	})
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, grpc.ErrServerStopped)) {
		a.log.Info("stopped")
		return nil
	}
	return err
}

// buildInfoGauge is reco_build_info{version,commit,goversion} = 1: which build
// each process runs, for dashboards and alerts on a mixed rollout.
func buildInfoGauge(info buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   server.Namespace,
		Name:        "build_info",
		Help:        "Always 1; its labels say which build of reco the process runs.",
		ConstLabels: prometheus.Labels{"version": info.Version, "commit": info.Commit, "goversion": info.GoVersion},
	})
	g.Set(1)
	return g
}

// serveHTTP serves srv on lis until it is shut down, over TLS with cfg when
// it is not nil (the process's server.tls).
func serveHTTP(srv *http.Server, lis net.Listener, cfg *tls.Config) error {
	if err := server.ServeHTTP(srv, lis, cfg); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// drainGateway stops the HTTP gateway accepting and lets its calls in flight
// finish until deadline, then cuts what is left.
func (a *App) drainGateway(deadline time.Time) {
	if a.gateway == nil {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := a.gateway.Shutdown(ctx); err != nil {
		a.log.Warn("http gateway calls cut at the drain timeout", zap.Error(err))
		_ = a.gateway.Close()
	}
}

func (a *App) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.log.Warn("close", zap.Error(err))
		}
	}
	a.closers = nil
}
