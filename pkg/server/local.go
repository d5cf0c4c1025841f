package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/timeout"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The calls between the services of one process (all-in-one mode) need no
// transport: Local runs them as Go calls of the handlers registered on the
// server, through the server's interceptors (metrics, logging, the policy,
// panic recovery; never shed, as ServeInProcess's are not) and the client's
// (metrics, the per-hop deadline, the breaker). Over an in-memory gRPC
// connection each hop encoded, framed and decoded its messages and handed
// them between three goroutines: a cache-hit refresh spent more CPU on its
// two inner hops than on its work.

// localAddr is the peer address of a Local call: in-process, so the server's
// interceptors treat it as the process's own.
var localAddr = inProcessAddr{localNet{}}

type localNet struct{}

func (localNet) Network() string { return "local" }
func (localNet) String() string  { return "local" }

// registry records the unary methods registered on the server for Local.
type registry struct {
	mu      sync.RWMutex
	methods map[string]localMethod // by full name, "/pkg.Service/Method"
}

type localMethod struct {
	impl    any
	handler func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
}

// RegisterService registers impl on the gRPC server, and its unary methods
// for Local.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.Server.RegisterService(desc, impl)
	s.local.mu.Lock()
	defer s.local.mu.Unlock()
	if s.local.methods == nil {
		s.local.methods = map[string]localMethod{}
	}
	for _, m := range desc.Methods {
		s.local.methods["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{impl: impl, handler: m.Handler}
	}
}

// Local returns a connection to the services registered on s (before or
// after this call), with the client side of Dial: each call gets
// callTimeout, is counted in metrics and, with breaker, goes through a
// circuit breaker named by name. Only unary methods: a stream is refused.
func (s *Server) Local(name string, callTimeout time.Duration, metrics *ClientMetrics, breaker bool) grpc.ClientConnInterface {
	interceptors := []grpc.UnaryClientInterceptor{metrics.UnaryClientInterceptor()}
	if breaker {
		interceptors = append(interceptors, peerBreaker(name))
	}
	interceptors = append(interceptors, timeout.UnaryClientInterceptor(callTimeout))
	return &localConn{s: s, client: interceptors}
}

type localConn struct {
	s      *Server
	client []grpc.UnaryClientInterceptor
}

// Invoke runs the client interceptors, then the method through the server's.
func (c *localConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.invoke(0, ctx, method, args, reply, opts)
}

func (c *localConn) invoke(i int, ctx context.Context, method string, args, reply any, opts []grpc.CallOption) error {
	if i == len(c.client) {
		return c.s.callLocal(ctx, method, args, reply)
	}
	next := func(ctx context.Context, method string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
		return c.invoke(i+1, ctx, method, args, reply, opts)
	}
	return c.client[i](ctx, method, args, reply, nil, next, opts...)
}

func (c *localConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "streams are not served to the process's own calls")
}

// localResult is what a handler returned.
type localResult struct {
	resp any
	err  error
}

// callLocal calls method's handler with a copy of args and copies its answer
// into reply. The handler runs on a goroutine of its own, so that the caller
// gets its deadline's error at its deadline, as over the network, even from a
// handler that is late to notice.
func (s *Server) callLocal(ctx context.Context, method string, args, reply any) error {
	s.local.mu.RLock()
	m, ok := s.local.methods[method]
	s.local.mu.RUnlock()
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return status.Errorf(codes.Internal, "%s: messages of %T and %T are not protobuf", method, args, reply)
	}
	// What the caller sent is what the handler receives: outgoing metadata
	// becomes incoming, and none of it leaks into the handler's own calls.
	md, _ := metadata.FromOutgoingContext(ctx)
	hctx := metadata.NewIncomingContext(metadata.NewOutgoingContext(ctx, nil), md)
	hctx = peer.NewContext(hctx, &peer.Peer{Addr: localAddr, LocalAddr: localAddr})
	hctx = grpc.NewContextWithServerTransportStream(hctx, localStream{method: method})
	dec := func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%s: request of %T is not protobuf", method, v)
		}
		proto.Merge(msg, in)
		return nil
	}
	done := make(chan localResult, 1)
	go func() {
		resp, err := m.handler(m.impl, hctx, dec, s.unary)
		done <- localResult{resp, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return r.err
		}
		msg, ok := r.resp.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "%s: answer of %T is not protobuf", method, r.resp)
		}
		moveInto(out, msg)
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// moveInto makes out hold what from holds, sharing its memory: the answer of a
// handler is the caller's alone once the handler returned (a server would
// only encode it), and proto.Merge's deep copy was a tenth of a hit's CPU.
func moveInto(out, from proto.Message) {
	proto.Reset(out)
	o := out.ProtoReflect()
	from.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		o.Set(fd, v)
		return true
	})
	o.SetUnknown(from.ProtoReflect().GetUnknown())
}

// localStream is the ServerTransportStream of a Local call: the method's name
// for grpc.Method; headers and trailers a handler sets go nowhere.
type localStream struct{ method string }

func (s localStream) Method() string             { return s.method }
func (localStream) SetHeader(metadata.MD) error  { return nil }
func (localStream) SendHeader(metadata.MD) error { return nil }
func (localStream) SetTrailer(metadata.MD) error { return nil }
