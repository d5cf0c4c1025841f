package server

import (
	"context"
	"sync"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"

	"github.com/toutiao-reco/toutiao-reco/pkg/tracing"
)

// The request log line carries who asked (user, channel) and what answered
// (strategy): fields a handler learns only while it runs, after the logging
// interceptor has started its line. A holder placed in the context before the
// logging interceptor runs lets the handler add them, and the interceptor reads
// them again when the call finishes.

type logFieldsKey struct{}

type logFields struct {
	mu     sync.Mutex
	fields logging.Fields
}

// AddLogFields adds key/value pairs to the request log line of the call ctx
// belongs to, and to its span when the call is traced (as reco.<key>); outside
// a call it does nothing.
func AddLogFields(ctx context.Context, kv ...any) {
	tracing.Annotate(ctx, kv...)
	if h, ok := ctx.Value(logFieldsKey{}).(*logFields); ok {
		h.mu.Lock()
		h.fields = append(h.fields, kv...)
		h.mu.Unlock()
	}
}

func fieldsFromContext(ctx context.Context) logging.Fields {
	h, ok := ctx.Value(logFieldsKey{}).(*logFields)
	if !ok {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(logging.Fields(nil), h.fields...)
}

// withLogFields starts a call's holder with the user and channel of requests
// that have them, and puts them on the call's span.
func withLogFields(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	h := &logFields{}
	if r, ok := req.(interface{ GetUserId() string }); ok {
		h.fields = append(h.fields, "user", r.GetUserId())
	}
	if r, ok := req.(interface{ GetChannelId() int32 }); ok {
		h.fields = append(h.fields, "channel", r.GetChannelId())
	}
	tracing.Annotate(ctx, h.fields...)
	return handler(context.WithValue(ctx, logFieldsKey{}, h), req)
}
