// Package app runs the services a process hosts: it opens the stores they need,
// connects each to its peers (in-process when the peer runs here, over the
// network otherwise), serves them on one gRPC server and drains on shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
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
	conns    map[string]*grpc.ClientConn
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
	// stores are the stores this process opened (nil for a role no target
	// needs).
	stores Stores
	// work is the modules' background work, run by Run.
	work    []background
	closers []func() error
}

// New opens what targets need and registers them; Run serves them.
func New(ctx context.Context, cfg config.Config, log *zap.Logger, targets []string) (a *App, err error) {
	a = &App{cfg: cfg, log: log, targets: targets, reg: prometheus.NewRegistry(), inproc: bufconn.Listen(1 << 20)}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if a.lis, err = net.Listen("tcp", cfg.Server.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen on server.grpc_addr: %w", err)
	}
	a.closers = append(a.closers, ignoreClosed(a.lis.Close))
	if a.metricsLis, err = net.Listen("tcp", cfg.Server.MetricsAddr); err != nil {
		return nil, fmt.Errorf("listen on server.metrics_addr: %w", err)
	}
	a.closers = append(a.closers, ignoreClosed(a.metricsLis.Close))
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.srv, err = server.New(log, a.reg, server.Options{MaxInflight: cfg.Server.MaxInflight}); err != nil {
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
		if err := modules[t].register(a.srv.Server, d); err != nil {
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
// process runs the peer, at its configured address otherwise.
func (a *App) dialPeers() (map[string]*grpc.ClientConn, error) {
	clientMetrics, err := server.NewClientMetrics(a.reg)
	if err != nil {
		return nil, err
	}
	conns := map[string]*grpc.ClientConn{}
	for _, t := range a.targets {
		for _, p := range modules[t].peers {
			if conns[p] != nil {
				continue
			}
			c, err := a.client(p)
			if err != nil {
				return nil, err
			}
			target, dialer := c.Addr, (func(context.Context, string) (net.Conn, error))(nil)
			if slices.Contains(a.targets, p) {
				target = "passthrough:///inprocess-" + p
				dialer = func(ctx context.Context, _ string) (net.Conn, error) { return a.inproc.DialContext(ctx) }
			}
			conn, err := server.Dial(target, c.Timeout, clientMetrics, dialer)
			if err != nil {
				return nil, fmt.Errorf("connect %s to %s: %w", t, p, err)
			}
			conns[p] = conn
			a.closers = append(a.closers, conn.Close)
		}
	}
	return conns, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.lis.Addr().String() }

// MetricsAddr is the address /metrics is served on.
func (a *App) MetricsAddr() string { return a.metricsLis.Addr().String() }

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
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	// Profiles for operators, on the metrics listener (loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	a.srv.MarkServing()
	a.log.Info("serving", zap.Strings("targets", a.targets), zap.String("grpc_addr", a.GRPCAddr()), zap.String("metrics_addr", a.MetricsAddr()))

	g, gctx := errgroup.WithContext(ctx)
	for _, work := range a.work {
		// gctx ends on SIGTERM (or when anything here fails), when the lame
		// duck starts: background work (file watchers) stops with it, and the
		// plan and models in force serve until the end.
		g.Go(func() error { return work(gctx) })
	}
	g.Go(func() error { return a.srv.Serve(a.lis) })
	g.Go(func() error { return a.srv.ServeInProcess(a.inproc) })
	g.Go(func() error {
		if err := httpSrv.Serve(a.metricsLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// The lame duck is for a stop that was asked for; when something here
		// failed, nothing is gained by serving on.
		lameDuck := a.cfg.Server.LameDuck
		if ctx.Err() == nil {
			lameDuck = 0
		}
		a.log.Info("draining", zap.Duration("lame_duck", lameDuck), zap.Duration("timeout", a.cfg.Server.DrainTimeout))
		a.srv.Drain(lameDuck, a.cfg.Server.DrainTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return httpSrv.Shutdown(sctx)
	})
	err := g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, grpc.ErrServerStopped)) {
		a.log.Info("stopped")
		return nil
	}
	return err
}

func (a *App) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.log.Warn("close", zap.Error(err))
		}
	}
	a.closers = nil
}
