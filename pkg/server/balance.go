package server

import (
	"context"
	"net"
	"strings"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/balancer/ringhash" // registers ring_hash_experimental
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// A peer runs as one or more replicas, named by its configured address: one
// host:port, a comma-separated list of them, or any gRPC target
// ("dns:///reco-center:10001", a Kubernetes headless service, resolves to every
// pod). Calls are spread by a consistent hash of the reader (userHeader), so
// one reader's calls reach one replica while it is up: its shared fill pass and
// its fallback claims (reco-center, DESIGN §4) stay in one process. A replica
// that goes down hands its readers to the next one on the ring, and a call it
// failed with UNAVAILABLE (killed in flight, connection refused) is retried once
// there: the refresh the client sees succeeds.

// userHeader carries the reader a call is for; the ring hash balancer reads it.
const userHeader = "x-reco-user"

// serviceConfig balances on userHeader and retries UNAVAILABLE once. A call
// without the header (one that names no reader) goes to a random ready replica.
// Retries are throttled (gRPC's token bucket: a failure takes a token, a
// success gives back a tenth, and retries stop below half of 100): the calls a
// killed replica had in flight are all retried, but a peer whose own
// dependency is down, answering UNAVAILABLE to everyone, does not get every
// call twice for long.
const serviceConfig = `{
  "loadBalancingConfig": [{"ring_hash_experimental": {"requestHashHeader": "` + userHeader + `"}}],
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0.005s", "maxBackoff": "0.02s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }],
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.1}
}`

// staticScheme is the resolver scheme of a comma-separated address list.
const staticScheme = "reco-replicas"

// peerTarget returns the gRPC target for addr, and the resolver a list needs.
func peerTarget(addr string) (string, []grpc.DialOption) {
	if !strings.Contains(addr, ",") {
		return addr, nil
	}
	var state resolver.State
	for _, a := range strings.Split(addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			// TLS checks each replica's certificate against its own host.
			host, _, _ := net.SplitHostPort(a)
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: host}}})
		}
	}
	r := manual.NewBuilderWithScheme(staticScheme)
	r.InitialState(state)
	return staticScheme + ":///" + addr, []grpc.DialOption{grpc.WithResolvers(r)}
}

// withUser puts the request's reader into userHeader, for the balancer.
func withUser(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if r, ok := req.(interface{ GetUserId() string }); ok && r.GetUserId() != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, userHeader, r.GetUserId())
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
