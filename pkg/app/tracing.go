package app

import (
	"context"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"

	"github.com/toutiao-reco/toutiao-reco/pkg/buildinfo"
	"github.com/toutiao-reco/toutiao-reco/pkg/tracing"
)

// Option changes how New builds a process.
type Option func(*options)

type options struct {
	tracer trace.TracerProvider
}

// WithTracerProvider traces the process's calls with tp instead of the
// provider the OTEL_* environment asks for (tracing.FromEnv): for a test that
// collects the spans of several in-process Apps in memory, or a program that
// embeds reco and owns its provider (and its shutdown).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp }
}

// openTracing sets a.tracer: the provider opts give, or the one the
// environment asks for, flushed and stopped last on close (after the servers
// and connections whose spans it exports). nil when tracing is off: then no
// server, connection or handler of the process is instrumented at all.
func (a *App) openTracing(ctx context.Context, opts []Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.tracer != nil {
		a.tracer = o.tracer
		return nil
	}
	tp, shutdown, err := tracing.FromEnv(ctx, os.Getenv, serviceName(a.targets), buildinfo.Get().Version, a.log)
	if err != nil {
		return err
	}
	a.tracer = tp
	a.closers = append(a.closers, shutdown)
	return nil
}

// serviceName is the process's service.name in traces when OTEL_SERVICE_NAME
// does not set one: reco-<target> for one service (reco-routing), the targets
// joined by + for several, reco for all of them.
func serviceName(targets []string) string {
	if slices.Equal(targets, order) {
		return "reco"
	}
	return "reco-" + strings.Join(targets, "+")
}
