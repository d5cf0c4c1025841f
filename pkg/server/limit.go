package server

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// limitInflight sheds load early: a call beyond max calls in flight is answered
// RESOURCE_EXHAUSTED at once, which the caller can retry elsewhere or degrade
// on, instead of queueing behind the others until every queued call misses its
// deadline. max 0 is unlimited.
//
// Never shed: the health service (a load balancer must still learn that the
// process is busy but alive), reflection, and the calls between services of one
// process (ServeInProcess: the outside call that caused them already holds a
// slot, so they are bounded by it, and shedding them would only turn an
// admitted call into a degraded one).
func limitInflight(max int) grpc.UnaryServerInterceptor {
	if max <= 0 {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	slots := make(chan struct{}, max)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if neverShed(ctx, info.FullMethod) {
			return handler(ctx, req)
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			return handler(ctx, req)
		default:
			return nil, status.Errorf(codes.ResourceExhausted, "server overloaded: %d calls in flight", max)
		}
	}
}

func neverShed(ctx context.Context, method string) bool {
	return openMethod(method) || inProcess(ctx)
}

// inProcessAddr is the peer address of a call that arrived through
// ServeInProcess.
type inProcessAddr struct{ net.Addr }

// inProcessListener marks the connections it accepts as in-process.
type inProcessListener struct{ net.Listener }

func (l inProcessListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return inProcessConn{c}, nil
}

type inProcessConn struct{ net.Conn }

func (c inProcessConn) RemoteAddr() net.Addr { return inProcessAddr{c.Conn.RemoteAddr()} }
