package tracing

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestEnabled(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		want    bool
		wantErr bool
	}{
		{name: "nothing set", vars: nil, want: false},
		{name: "otlp exporter", vars: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "an endpoint", vars: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, want: true},
		{name: "a traces endpoint", vars: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, want: true},
		{name: "none wins over an endpoint", vars: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, want: false},
		{name: "sdk disabled", vars: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, want: false},
		{name: "sdk not disabled", vars: map[string]string{"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{name: "an exporter reco has not", vars: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
	}
	for _, tt := range tests {
		got, err := Enabled(env(tt.vars))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: Enabled(%v) = %v, %v; want %v (error %v)", tt.name, tt.vars, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestOffAddsNothing: with tracing off a process has no provider, and its
// servers, connections and HTTP handler are left as they are.
func TestOffAddsNothing(t *testing.T) {
	tp, shutdown, err := FromEnv(context.Background(), env(nil), "reco-test", "dev", zap.NewNop())
	if tp != nil || err != nil || shutdown() != nil {
		t.Fatalf("FromEnv with nothing set = %v, %v; want no provider", tp, err)
	}
	if _, ok := Server(nil).(grpc.EmptyServerOption); !ok {
		t.Errorf("Server(nil) = %T, want grpc.EmptyServerOption", Server(nil))
	}
	if _, ok := Client(nil).(grpc.EmptyDialOption); !ok {
		t.Errorf("Client(nil) = %T, want grpc.EmptyDialOption", Client(nil))
	}
	h := http.Handler(http.NewServeMux()) // comparable, unlike a HandlerFunc
	if got := HTTP(h, nil); got != h {
		t.Errorf("HTTP(h, nil) = %T, want h itself", got)
	}
}

// TestFromEnvExportsToTheCollector: with an OTLP endpoint set, spans reach it
// (OTLP over HTTP, the default protocol) named by the process's service name,
// at the latest when the process stops.
func TestFromEnvExportsToTheCollector(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/traces" {
			mu.Lock()
			bodies = append(bodies, body)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)

	tp, shutdown, err := FromEnv(context.Background(), env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL}), "reco-test", "dev", zap.NewNop())
	if err != nil || tp == nil {
		t.Fatalf("FromEnv with an endpoint = %v, %v; want a provider", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "refresh")
	span.End()
	if err := shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) == 0 {
		t.Fatal("the collector got no traces")
	}
	for _, want := range []string{"reco-test", "refresh"} {
		if !bytes.Contains(bytes.Join(bodies, nil), []byte(want)) {
			t.Errorf("the exported spans do not mention %q", want)
		}
	}
}

func TestUnknownProtocolIsAnError(t *testing.T) {
	_, _, err := FromEnv(context.Background(), env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}), "reco-test", "dev", zap.NewNop())
	if err == nil {
		t.Error("FromEnv with OTEL_EXPORTER_OTLP_PROTOCOL=http/json: no error")
	}
}

// TestAnnotate: the log fields go on a recording span as reco.<key>, typed.
func TestAnnotate(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	defer func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	ctx, span := tp.Tracer("test").Start(context.Background(), "call")
	Annotate(ctx, "user", "U1", "channel", int32(3), "strategy", "Algo-1")
	span.End()
	Annotate(context.Background(), "user", "nobody") // no span: nothing, no panic

	got := exporter.GetSpans()[0].Attributes
	want := []attribute.KeyValue{attribute.String("reco.user", "U1"), attribute.Int64("reco.channel", 3), attribute.String("reco.strategy", "Algo-1")}
	if len(got) != len(want) {
		t.Fatalf("attributes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("attribute %d = %v, want %v", i, got[i], want[i])
		}
	}
}
