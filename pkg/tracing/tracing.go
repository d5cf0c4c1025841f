// Package tracing is the suite's OpenTelemetry tracing: the tracer provider a
// process builds from the standard OTEL_* environment variables, and the gRPC
// and HTTP instrumentation (otelgrpc, otelhttp) that every hop puts on its
// servers and clients, so that one refresh is one trace from routing through
// reco-center to cache, recall and sort.
//
// Tracing is off unless the environment asks for it (Enabled). Off, there is
// no tracer provider at all: Server, Client and HTTP add nothing to a server,
// a connection or a handler, and Annotate finds no recording span, so a call
// pays one context lookup. Nothing here sets OpenTelemetry's global provider
// or propagator: each process passes its provider to its own servers and
// clients, which is what lets a test run five traced services in one binary.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// The environment variables that turn tracing on or off. The others the
// exporter and the SDK read themselves (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG,
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*, …).
const (
	envDisabled       = "OTEL_SDK_DISABLED"
	envExporter       = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// shutdownTimeout bounds the flush of the spans still queued when the process
// stops: a collector that is down must not hold the stop.
const shutdownTimeout = 5 * time.Second

// Enabled reports whether the environment (getenv, os.Getenv in a process)
// asks for traces. The OpenTelemetry specification's default exporter is
// otlp; ours is none, so that a process nobody pointed at a collector spends
// nothing on spans: traces are on with OTEL_TRACES_EXPORTER=otlp, or with
// OTEL_TRACES_EXPORTER unset and an OTLP endpoint set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
// OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn them off whatever
// else is set. Any other exporter is an error: a typo would otherwise silently
// trace nothing.
func Enabled(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv(envDisabled)), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(getenv(envExporter)); exp {
	case "otlp":
		return true, nil
	case "none":
		return false, nil
	case "":
		return getenv(envEndpoint) != "" || getenv(envTracesEndpoint) != "", nil
	default:
		return false, fmt.Errorf("%s=%q: reco exports traces with otlp or not at all (none)", envExporter, exp)
	}
}

// FromEnv returns the tracer provider the environment asks for (see Enabled)
// and the function that flushes and stops it when the process ends; nil and a
// no-op when tracing is off. service and version name the process
// (service.name, service.version) unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES say otherwise. Spans go in batches to an OTLP
// collector over OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (the
// specification's default, port 4318) or grpc (port 4317). Export errors
// (a collector that is down) are logged to log at warn: OpenTelemetry reports
// them through its process-wide error handler, which FromEnv sets.
func FromEnv(ctx context.Context, getenv func(string) string, service, version string, log *zap.Logger) (trace.TracerProvider, func() error, error) {
	on, err := Enabled(getenv)
	if err != nil || !on {
		return nil, func() error { return nil }, err
	}
	exporter, err := newExporter(ctx, getenv)
	if err != nil {
		return nil, nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		// Last, so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing resource: %w", err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", zap.Error(err)) }))
	// The sampler is OTEL_TRACES_SAMPLER's (the SDK reads it; by default
	// parentbased_always_on: a call whose caller sampled it is sampled).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	shutdown := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("flush traces: %w", err)
		}
		return nil
	}
	return tp, shutdown, nil
}

// newExporter is the OTLP exporter of the protocol the environment names. The
// exporters read the endpoint, headers, TLS and timeout variables themselves.
func newExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	name, protocol := envTracesProtocol, getenv(envTracesProtocol)
	if protocol == "" {
		name, protocol = envProtocol, getenv(envProtocol)
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%s=%q: want http/protobuf or grpc", name, protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	return exp, nil
}

// propagator carries a call's trace context to the next hop: W3C traceparent
// and tracestate, and W3C baggage.
func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// grpcOptions are the otelgrpc options of both sides of a hop. Health checks
// are not traced: probes every few seconds would bury the calls that matter.
// The RPC metrics otelgrpc would record go to a no-op meter: Prometheus has
// them already (pkg/server).
func grpcOptions(tp trace.TracerProvider) []otelgrpc.Option {
	return []otelgrpc.Option{
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(propagator()),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	}
}

// Server is the server option that gives every call a server span, continuing
// the trace its caller sent (traceparent); nothing when tp is nil.
func Server(tp trace.TracerProvider) grpc.ServerOption {
	if tp == nil {
		return grpc.EmptyServerOption{}
	}
	return grpc.StatsHandler(otelgrpc.NewServerHandler(grpcOptions(tp)...))
}

// Client is the dial option that gives every call on a connection a client
// span and sends its trace context to the peer; nothing when tp is nil.
func Client(tp trace.TracerProvider) grpc.DialOption {
	if tp == nil {
		return grpc.EmptyDialOption{}
	}
	return grpc.WithStatsHandler(otelgrpc.NewClientHandler(grpcOptions(tp)...))
}

// healthzPath is the HTTP gateway's probe, not traced as gRPC health is not.
const healthzPath = "/healthz"

// HTTP wraps h so that every request starts a server span, or continues the
// trace of its traceparent header; h itself when tp is nil. The gRPC call h
// makes continues it when its connection has Client.
func HTTP(h http.Handler, tp trace.TracerProvider) http.Handler {
	if tp == nil {
		return h
	}
	return otelhttp.NewHandler(h, "gateway",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != healthzPath }),
	)
}

// AttrPrefix prefixes the suite's own span attributes (reco.user,
// reco.channel, reco.strategy).
const AttrPrefix = "reco."

// Annotate puts key/value pairs (the request log's fields: user, channel,
// strategy) on the span of ctx as reco.<key> attributes, when that span
// records. Span attributes, unlike metric labels, may name a user: each span
// is one call.
func Annotate(ctx context.Context, kv ...any) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		key, _ := kv[i].(string)
		attrs = append(attrs, attr(AttrPrefix+key, kv[i+1]))
	}
	span.SetAttributes(attrs...)
}

// attr is the attribute of one log field value.
func attr(key string, v any) attribute.KeyValue {
	switch v := v.(type) {
	case string:
		return attribute.String(key, v)
	case int32:
		return attribute.Int64(key, int64(v))
	case int64:
		return attribute.Int64(key, v)
	case int:
		return attribute.Int(key, v)
	case bool:
		return attribute.Bool(key, v)
	case fmt.Stringer:
		return attribute.String(key, v.String())
	}
	return attribute.String(key, fmt.Sprint(v))
}
