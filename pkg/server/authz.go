package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Who may call what (DESIGN.md §10). Each internal method names the callers
// that need it (only reco-center may Store into the cache); a caller is known
// by the certificate it presented over mutual TLS or by its bearer token. Health
// and reflection stay open to anyone, and so do the calls between the services
// of one process (they never leave it). A method the policy does not name is
// refused: a new method is closed until someone decides who may call it.

// Anyone is the caller of a public method (the UserRecommend API).
const Anyone = "*"

// Policy names, for each full method (/reco.cache.v1.CacheService/Store), the
// callers that may call it: service names (routing, recocenter, …), "operator"
// for admin calls, or Anyone.
type Policy map[string][]string

// tokenRecheck is how often the tokens directory is read again: a rotated
// token is accepted within this long.
const tokenRecheck = 5 * time.Second

// minTokenLen refuses tokens short enough to guess.
const minTokenLen = 16

// Authorizer enforces a Policy on a server's calls.
type Authorizer struct {
	policy Policy
	tokens *reloading[[]token] // nil: no tokens are accepted
	denied *prometheus.CounterVec
	log    *zap.Logger
}

// token is one caller's token, kept as its SHA-256: comparing digests in
// constant time leaks neither the token nor its length.
type token struct {
	caller string
	digest [sha256.Size]byte
}

// NewAuthorizer returns the authorizer of policy. Callers authenticate by
// their mTLS certificate (the listener must verify client certificates:
// server.tls.client_ca_file) or, when tokensDir is set, by a bearer token: the
// directory holds one file per caller, named after it (a Kubernetes Secret
// mounted as a directory), whose content is that caller's token. Refused calls
// are counted in reco_authz_denied_total{method,reason} on reg.
func NewAuthorizer(policy Policy, tokensDir string, log *zap.Logger, reg prometheus.Registerer) (*Authorizer, error) {
	a := &Authorizer{policy: policy, log: log}
	if tokensDir != "" {
		load := func() ([]token, error) { return readTokens(tokensDir, log) }
		var err error
		if a.tokens, err = newReloading(load, tokenRecheck, log); err != nil {
			return nil, err
		}
	}
	a.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace,
		Name:      "authz_denied_total",
		Help:      "Calls refused by the per-method policy, by method and reason (no_identity, unknown_token: UNAUTHENTICATED; caller_not_allowed, no_policy: PERMISSION_DENIED).",
	}, []string{"method", "reason"})
	if err := reg.Register(a.denied); err != nil {
		return nil, fmt.Errorf("register authz metrics: %w", err)
	}
	return a, nil
}

// readTokens reads one token per regular file of dir, named after its caller.
// Names starting with a dot are skipped (a Secret volume's ..data links).
func readTokens(dir string, log *zap.Logger) ([]token, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("server.authz.tokens_dir: %w", err)
	}
	var out []token
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("server.authz.tokens_dir: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < minTokenLen {
			// The caller's name only: the token is a secret, even a weak one.
			log.Error("token refused: shorter than the minimum", zap.String("caller", name), zap.Int("min_bytes", minTokenLen))
			continue
		}
		out = append(out, token{caller: name, digest: sha256.Sum256([]byte(tok))})
	}
	return out, nil
}

// openMethod reports whether anyone may call method whatever the policy.
func openMethod(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

func (a *Authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *Authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// authorize is nil when the caller of ctx may call method, else the status
// error it gets.
func (a *Authorizer) authorize(ctx context.Context, method string) error {
	if openMethod(method) || inProcess(ctx) {
		return nil
	}
	allowed, ok := a.policy[method]
	if !ok {
		return a.deny(ctx, method, "no_policy", nil, codes.PermissionDenied, "%s is closed: no caller may call it", method)
	}
	if slices.Contains(allowed, Anyone) {
		return nil
	}
	callers, tokenSent := a.identify(ctx)
	if len(callers) == 0 {
		if tokenSent {
			return a.deny(ctx, method, "unknown_token", nil, codes.Unauthenticated, "the bearer token is not one of a known caller")
		}
		return a.deny(ctx, method, "no_identity", nil, codes.Unauthenticated, "%s needs the caller's identity: a client certificate (mutual TLS) or an authorization: Bearer token", method)
	}
	for _, c := range callers {
		if slices.Contains(allowed, c) {
			return nil
		}
	}
	return a.deny(ctx, method, "caller_not_allowed", callers, codes.PermissionDenied, "%s may not call %s (allowed: %s)", strings.Join(callers, ", "), method, strings.Join(allowed, ", "))
}

func (a *Authorizer) deny(ctx context.Context, method, reason string, callers []string, code codes.Code, format string, args ...any) error {
	a.denied.WithLabelValues(method, reason).Inc()
	var addr string
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	a.log.Warn("call refused", zap.String("grpc.method", method), zap.String("reason", reason), zap.Strings("callers", callers), zap.String("peer", addr))
	return status.Errorf(code, format, args...)
}

// identify names the caller of ctx: the services its verified client
// certificate names (CommonName; the last path segment of a spiffe:// URI SAN)
// and the caller whose token it sent. tokenSent reports whether it sent a
// token at all.
func (a *Authorizer) identify(ctx context.Context) (callers []string, tokenSent bool) {
	if p, ok := peer.FromContext(ctx); ok {
		// Client certificates are asked for only with server.tls.client_ca_file,
		// and then verified against it before the call gets here.
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			leaf := ti.State.PeerCertificates[0]
			if leaf.Subject.CommonName != "" {
				callers = append(callers, leaf.Subject.CommonName)
			}
			for _, u := range leaf.URIs {
				if u.Scheme == "spiffe" {
					if name := filepath.Base(u.Path); name != "." && name != "/" && !slices.Contains(callers, name) {
						callers = append(callers, name)
					}
				}
			}
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			continue
		}
		tokenSent = true
		if a.tokens == nil {
			continue
		}
		digest := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		caller := ""
		for _, t := range a.tokens.current() {
			// Every known token is compared, so the time taken does not tell
			// which one matched.
			if subtle.ConstantTimeCompare(digest[:], t.digest[:]) == 1 {
				caller = t.caller
			}
		}
		if caller != "" && !slices.Contains(callers, caller) {
			callers = append(callers, caller)
		}
	}
	return callers, tokenSent
}

// TokenCredentials sends the token in file as `authorization: Bearer …` on
// every call of a peer connection (clients.token_file). The file is read again
// when it changes, checked every few seconds.
func TokenCredentials(file string, log *zap.Logger) (credentials.PerRPCCredentials, error) {
	load := func() (string, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("clients.token_file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < minTokenLen {
			return "", fmt.Errorf("clients.token_file %s: the token must be at least %d bytes", file, minTokenLen)
		}
		return tok, nil
	}
	r, err := newReloading(load, tokenRecheck, log)
	if err != nil {
		return nil, err
	}
	return bearer{r}, nil
}

type bearer struct{ tok *reloading[string] }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.tok.current()}, nil
}

// RequireTransportSecurity is false so that a token can also guard a
// plaintext deployment; the process logs a warning at start-up when it sends a
// token without TLS.
func (bearer) RequireTransportSecurity() bool { return false }

// reloading is a value loaded from files and loaded again at most every
// `every`; a failed reload keeps the value in force (and is logged once).
type reloading[T any] struct {
	load  func() (T, error)
	every time.Duration
	log   *zap.Logger

	mu      sync.Mutex
	val     T
	next    time.Time
	lastErr string
}

func newReloading[T any](load func() (T, error), every time.Duration, log *zap.Logger) (*reloading[T], error) {
	v, err := load()
	if err != nil {
		return nil, err
	}
	return &reloading[T]{load: load, every: every, log: log, val: v, next: time.Now().Add(every)}, nil
}

func (r *reloading[T]) current() T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.After(r.next) {
		r.next = now.Add(r.every)
		v, err := r.load()
		switch {
		case err == nil:
			r.val, r.lastErr = v, ""
		case err.Error() != r.lastErr:
			r.lastErr = err.Error()
			r.log.Error("tokens not reloaded; those in force stay", zap.Error(err))
		}
	}
	return r.val
}

// inProcess reports whether the call of ctx came through ServeInProcess.
func inProcess(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	_, in := p.Addr.(inProcessAddr)
	return in
}

// passUnary and passStream stand in for the Authorizer of a server without
// one: every caller may call every method.
func passUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(ctx, req)
}

func passStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, ss)
}
