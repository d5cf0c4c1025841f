package server

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/breaker"
)

// peerBreaker fails the calls to a peer at once while it keeps failing
// (DESIGN §6), so a dead or hung service costs its callers ~0 ms and their
// fallbacks answer, instead of each call waiting out its deadline.
func peerBreaker(target string) grpc.UnaryClientInterceptor {
	b := breaker.New("peer "+target, nil)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := b.Do(ctx, peerFailed, func(ctx context.Context) error { return invoker(ctx, method, req, reply, cc, opts...) })
		if errors.Is(err, breaker.ErrOpen) {
			// What a retry later can fix: the caller degrades as for a down peer.
			return status.Errorf(codes.Unavailable, "%v: the peer kept failing, calls are skipped for a moment", err)
		}
		return err
	}
}

// peerFailed says whether a call's error counts against the peer: it was
// unreachable, too slow or overloaded, not the request's fault.
func peerFailed(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}
