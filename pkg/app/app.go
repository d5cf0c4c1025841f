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
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// deps is what a module is built from.
type deps struct {
	// ctx lives as long as the process serves: background work (reloads) stops
	// with it.
	ctx    context.Context
	cfg    config.Config
	log    *zap.Logger
	reg    prometheus.Registerer
	tables storage.Tables
	sets   storage.SortedSets
	peer   func(name string) *grpc.ClientConn
}

// logger is the logger of one service: five services in one process stay
// distinguishable in the logs.
func (d deps) logger(service string) *zap.Logger { return d.log.With(zap.String("service", service)) }

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
	inproc *bufconn.Listener
	// tables and sets are the stores this process opened (nil if none).
	tables     storage.Tables
	sets       storage.SortedSets
	lis        net.Listener
	metricsLis net.Listener
	closers    []func() error
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
	if a.srv, err = server.New(log, a.reg); err != nil {
		return nil, err
	}
	clientMetrics, err := server.NewClientMetrics(a.reg)
	if err != nil {
		return nil, err
	}

	var needTables, needSets bool
	for _, t := range targets {
		needTables = needTables || modules[t].tables
		needSets = needSets || modules[t].sets
	}
	d := deps{ctx: ctx, cfg: cfg, log: log, reg: a.reg}
	if d.tables, d.sets, err = a.openStores(ctx, needTables, needSets); err != nil {
		return nil, err
	}
	a.tables, a.sets = d.tables, d.sets

	conns := map[string]*grpc.ClientConn{}
	for _, t := range targets {
		for _, p := range modules[t].peers {
			if conns[p] != nil {
				continue
			}
			c := a.client(p)
			target, dialer := c.Addr, (func(context.Context, string) (net.Conn, error))(nil)
			if slices.Contains(targets, p) {
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
	d.peer = func(name string) *grpc.ClientConn { return conns[name] }
	for _, t := range targets {
		if err := modules[t].register(a.srv.Server, d); err != nil {
			return nil, fmt.Errorf("start %s: %w", t, err)
		}
	}
	return a, nil
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

func (a *App) client(name string) config.Client {
	switch name {
	case RecoCenter:
		return a.cfg.Clients.RecoCenter
	case Recall:
		return a.cfg.Clients.Recall
	case Sort:
		return a.cfg.Clients.Sort
	default:
		return a.cfg.Clients.Cache
	}
}

// Run serves until ctx is cancelled (SIGTERM or SIGINT in main), then reports
// NOT_SERVING, drains in-flight calls within the drain timeout and closes the
// connections and stores in reverse order of opening.
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
	g.Go(func() error { return a.srv.Serve(a.lis) })
	g.Go(func() error { return a.srv.Serve(a.inproc) })
	g.Go(func() error {
		if err := httpSrv.Serve(a.metricsLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("draining", zap.Duration("timeout", a.cfg.Server.DrainTimeout))
		a.srv.Drain(a.cfg.Server.DrainTimeout)
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
