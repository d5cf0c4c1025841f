package app

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/tracing"
)

// startTracedSplit runs the services of a refresh as separate Apps (each its
// own store, seeded with the fixture, and its own tracer provider whose
// service.name is the service) that export their spans to one in-memory
// exporter, as five processes would to one collector. It returns routing's
// App, a client of its public API and the exporter.
func startTracedSplit(t *testing.T) (*App, userreco.UserRecommendClient, *tracetest.InMemoryExporter) {
	t.Helper()
	exporter := tracetest.NewInMemoryExporter()
	models := t.TempDir()
	apps := map[string]*App{}
	var client userreco.UserRecommendClient
	// The services a refresh of a cold cache passes through, peers first.
	for _, name := range []string{Cache, Recall, Sort, RecoCenter, Routing} {
		cfg := testConfig(t)
		cfg.Sort.ModelDir = models
		seedFixture(t, cfg, models)
		for peer, app := range apps {
			setPeerAddr(&cfg, peer, app.GRPCAddr())
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSyncer(exporter),
			sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
		)
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		app, conn, _ := start(t, cfg, []string{name}, WithTracerProvider(tp))
		apps[name] = app
		client = userreco.NewUserRecommendClient(conn) // routing's: it starts last
	}
	return apps[Routing], client, exporter
}

// TestRefreshIsOneTraceAcrossSplitServices: one refresh through the public
// API is one trace from routing through reco-center to cache, recall and sort,
// each span's parent in it, with who asked and under which strategy on the
// routing and reco-center spans. Over HTTP the gateway's span starts it, or
// continues the trace of the caller's traceparent.
func TestRefreshIsOneTraceAcrossSplitServices(t *testing.T) {
	routing, client, exporter := startTracedSplit(t)

	t.Run("grpc", func(t *testing.T) {
		exporter.Reset()
		tr, err := client.UserRecommend(callCtx(t), &userreco.User{UserId: "U1", ChannelId: fixture.Channel, ArticleNum: 3, TimeStamp: time.Now().UnixMilli()})
		if err != nil || len(tr.GetRecommends()) != 3 {
			t.Fatalf("refresh = %d articles, %v; want 3", len(tr.GetRecommends()), err)
		}
		spans := waitForTrace(t, exporter)
		checkTrace(t, spans, trace.SpanContext{})
		for _, method := range []string{rootMethod, "reco.recocenter.v1.RecoCenterService/Feed"} {
			checkWho(t, serverSpan(t, spans, method), "U1", fixture.Channel)
		}
		// A cold cache: the refresh ranks (recall, sort) and stores (cache).
		if got := rpcServices(spans); len(got) < 4 {
			t.Errorf("gRPC services in the trace = %v, want at least 4 (routing, reco-center, and cache, recall or sort)", got)
		}
		if got := serviceNames(spans); len(got) < 4 {
			t.Errorf("service.name of the spans = %v, want at least 4 processes", got)
		}
	})

	t.Run("http with a caller's traceparent", func(t *testing.T) {
		exporter.Reset()
		caller := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
			TraceFlags: trace.FlagsSampled,
		})
		body := fmt.Sprintf(`{"user_id": "U1", "channel_id": %d, "article_num": 2, "time_stamp": %d}`, fixture.Channel, time.Now().UnixMilli())
		req, err := http.NewRequestWithContext(callCtx(t), http.MethodPost, "http://"+routing.HTTPAddr()+"/v1/user_recommend", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", caller.TraceID(), caller.SpanID()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // only the status is wanted
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v1/user_recommend: %s", resp.Status)
		}
		spans := waitForTrace(t, exporter)
		checkTrace(t, spans, caller)
		checkWho(t, serverSpan(t, spans, rootMethod), "U1", fixture.Channel)
	})
}

// TestRefreshIsOneTraceAllInOne: in one process the hops go through bufconn,
// and are traced and connected the same.
func TestRefreshIsOneTraceAllInOne(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := testConfig(t)
	cfg.Sort.ModelDir = t.TempDir()
	seedFixture(t, cfg, cfg.Sort.ModelDir)
	_, conn, _ := start(t, cfg, order, WithTracerProvider(tp))
	exporter.Reset()
	if _, err := userreco.NewUserRecommendClient(conn).UserRecommend(callCtx(t), &userreco.User{UserId: "U1", ChannelId: fixture.Channel, ArticleNum: 3, TimeStamp: time.Now().UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	spans := waitForTrace(t, exporter)
	checkTrace(t, spans, trace.SpanContext{})
	if got := rpcServices(spans); len(got) < 4 {
		t.Errorf("gRPC services in the trace = %v, want at least 4", got)
	}
	checkWho(t, serverSpan(t, spans, "reco.recocenter.v1.RecoCenterService/Feed"), "U1", fixture.Channel)
}

// rootMethod is the span a refresh's trace starts with on routing.
const rootMethod = "UserRecommend/user_recommend"

// waitForTrace returns the exported spans once they are a whole trace (see
// whole), or what there is after a few seconds: a server span ends after its
// answer is sent, so the client may hold the answer before the spans are in.
func waitForTrace(t *testing.T, exporter *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans := exporter.GetSpans()
		if whole(spans) || time.Now().After(deadline) {
			return spans
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// whole says spans hold routing's server span, exactly one span whose parent
// is not among them (the root), and a server span under every client span.
func whole(spans tracetest.SpanStubs) bool {
	return slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return isServer(s, rootMethod) }) &&
		len(roots(spans)) == 1 && len(unanswered(spans)) == 0
}

func isServer(s tracetest.SpanStub, name string) bool {
	return s.SpanKind == trace.SpanKindServer && s.Name == name
}

// roots are the spans whose parent is not among spans.
func roots(spans tracetest.SpanStubs) tracetest.SpanStubs {
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	var out tracetest.SpanStubs
	for _, s := range spans {
		if !ids[s.Parent.SpanID()] {
			out = append(out, s)
		}
	}
	return out
}

// unanswered are the client spans without a server span under them: calls
// whose trace context did not reach the peer.
func unanswered(spans tracetest.SpanStubs) tracetest.SpanStubs {
	served := map[trace.SpanID]bool{}
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindServer {
			served[s.Parent.SpanID()] = true
		}
	}
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindClient && !served[s.SpanContext.SpanID()] {
			out = append(out, s)
		}
	}
	return out
}

// checkTrace asserts spans are one connected trace, each call answered by a
// server span of the peer, started by routing's span (caller invalid) or
// continuing caller's trace.
func checkTrace(t *testing.T, spans tracetest.SpanStubs, caller trace.SpanContext) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("spans:\n%s", describe(spans))
		}
	}()
	traceID := caller.TraceID()
	if !caller.IsValid() {
		traceID = serverSpan(t, spans, rootMethod).SpanContext.TraceID()
	}
	for _, s := range spans {
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %s is in trace %s, want %s: the trace context was not passed on", s.Name, s.SpanContext.TraceID(), traceID)
		}
	}
	switch r := roots(spans); {
	case len(r) != 1:
		t.Errorf("%d spans whose parent is not in the trace (%s), want 1: the root", len(r), names(r))
	case caller.IsValid() && r[0].Parent.SpanID() != caller.SpanID():
		t.Errorf("root span %s has parent %s, want the caller's span %s", r[0].Name, r[0].Parent.SpanID(), caller.SpanID())
	case !caller.IsValid() && (!isServer(r[0], rootMethod) || r[0].Parent.IsValid()):
		t.Errorf("root span = %s (parent %s), want routing's %s with no parent", r[0].Name, r[0].Parent.SpanID(), rootMethod)
	}
	if u := unanswered(spans); len(u) > 0 {
		t.Errorf("client spans without the peer's server span under them: %s", names(u))
	}
}

// checkWho asserts span says who asked and under which strategy.
func checkWho(t *testing.T, span tracetest.SpanStub, user string, channel int32) {
	t.Helper()
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range span.Attributes {
		got[kv.Key] = kv.Value
	}
	if v := got[tracing.AttrPrefix+"user"]; v.AsString() != user {
		t.Errorf("span %s: reco.user = %q, want %q", span.Name, v.String(), user)
	}
	if v := got[tracing.AttrPrefix+"channel"]; v.Type() != attribute.INT64 || v.AsInt64() != int64(channel) {
		t.Errorf("span %s: reco.channel = %q, want %d", span.Name, v.String(), channel)
	}
	if v := got[tracing.AttrPrefix+"strategy"]; v.AsString() == "" {
		t.Errorf("span %s: no reco.strategy", span.Name)
	}
}

// serverSpan is the server span of method (a span name: "Service/method").
func serverSpan(t *testing.T, spans tracetest.SpanStubs, method string) tracetest.SpanStub {
	t.Helper()
	i := slices.IndexFunc(spans, func(s tracetest.SpanStub) bool { return isServer(s, method) })
	if i < 0 {
		t.Fatalf("no server span %s in %s", method, names(spans))
	}
	return spans[i]
}

// rpcServices are the gRPC services of the server spans (from rpc.method).
func rpcServices(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if kv.Key == semconv.RPCMethodKey && s.SpanKind == trace.SpanKindServer {
				svc, _, _ := strings.Cut(kv.Value.AsString(), "/")
				if !slices.Contains(out, svc) {
					out = append(out, svc)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// serviceNames are the service.name resource attributes of spans.
func serviceNames(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		if v, ok := s.Resource.Set().Value(semconv.ServiceNameKey); ok && !slices.Contains(out, v.AsString()) {
			out = append(out, v.AsString())
		}
	}
	slices.Sort(out)
	return out
}

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return strings.Join(out, ", ")
}

func describe(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		svc, _ := s.Resource.Set().Value(semconv.ServiceNameKey)
		fmt.Fprintf(&b, "  %s %s [%s] trace %s span %s parent %s\n", s.SpanKind, s.Name, svc.String(), s.SpanContext.TraceID(), s.SpanContext.SpanID(), s.Parent.SpanID())
	}
	return b.String()
}
