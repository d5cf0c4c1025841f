package hbase

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/toutiao-reco/toutiao-reco/pkg/breaker"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase/internal/thrift2"
)

// pool holds the connections to the gateway. A slot is taken for the duration of
// a call, so at most cap(slots) calls run at once and each owns its connection.
type pool struct {
	addr        string
	dialTimeout time.Duration
	idleTimeout time.Duration
	// tls, when not nil, wraps every connection in TLS (Config.TLS).
	tls   *certs.ClientTLS
	conf  *thrift.TConfiguration
	slots chan struct{}
	// breaker fails calls at once while HBase or its gateway keeps failing,
	// so a dead store costs a request nothing and its fallback answers.
	breaker *breaker.Breaker

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

// conn is one gateway connection and the Thrift client over it.
type conn struct {
	nc       net.Conn
	client   *thrift2.THBaseServiceClient
	lastUsed time.Time
}

func newPool(cfg Config) *pool {
	return &pool{
		addr:        cfg.ThriftAddr,
		dialTimeout: cfg.DialTimeout,
		idleTimeout: cfg.IdleTimeout,
		conf: &thrift.TConfiguration{
			// Replies, not requests, are bounded here: a getMultiple of a few
			// hundred 111-float vectors is about 1 MiB.
			MaxFrameSize:   256 << 20,
			MaxMessageSize: 256 << 20,
		},
		slots:   make(chan struct{}, cfg.PoolSize),
		breaker: breaker.New("hbase", nil),
	}
}

// get returns a connection, an idle one if there is one, and whether it was
// reused. It waits for a free slot as long as ctx allows.
func (p *pool) get(ctx context.Context) (*conn, bool, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, fmt.Errorf("wait for an hbase connection: %w", ctx.Err())
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, false, ErrClosed
	}
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(c.lastUsed) < p.idleTimeout {
			p.mu.Unlock()
			return c, true, nil
		}
		_ = c.nc.Close()
	}
	p.mu.Unlock()
	c, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, false, nil
}

// put gives c back; a connection that is not healthy is closed instead.
func (p *pool) put(c *conn, healthy bool) {
	defer func() { <-p.slots }()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !healthy || p.closed {
		_ = c.nc.Close()
		return
	}
	c.lastUsed = time.Now()
	p.idle = append(p.idle, c)
}

func (p *pool) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: p.dialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, fmt.Errorf("dial hbase thrift gateway: %w", err)
	}
	if p.tls != nil {
		if nc, err = p.tls.Handshake(ctx, nc, p.addr); err != nil {
			return nil, fmt.Errorf("dial hbase thrift gateway: %w", err)
		}
	}
	framed := thrift.NewTFramedTransportConf(socket{nc}, p.conf)
	proto := thrift.NewTBinaryProtocolConf(framed, p.conf)
	return &conn{nc: nc, client: thrift2.NewTHBaseServiceClient(thrift.NewTStandardClient(proto, proto))}, nil
}

// close closes the idle connections; those in use are closed when given back.
func (p *pool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		_ = c.nc.Close()
	}
	p.idle = nil
	return nil
}

// socket is a thrift.TTransport over a net.Conn that leaves the connection's
// deadline alone. thrift.TSocket resets the deadline before every read from its
// SocketTimeout, which would override the per-call deadline derived from the
// caller's context.
type socket struct{ net.Conn }

func (socket) Open() error                 { return nil }
func (socket) IsOpen() bool                { return true }
func (socket) Flush(context.Context) error { return nil }
func (socket) RemainingBytes() uint64      { return math.MaxUint64 }

// longAgo is a deadline in the past: setting it interrupts blocked reads and
// writes at once.
var longAgo = time.Unix(1, 0)

// call runs fn on a pooled connection with the deadline of the call: the earlier
// of ctx's and timeout from now. A cancelled ctx interrupts fn. If fn fails on a
// connection taken from the idle pool because that connection had gone stale
// (the gateway restarted, or closed it), an idempotent call is retried once on a
// new connection.
func (p *pool) call(ctx context.Context, timeout time.Duration, idempotent bool, fn func(ctx context.Context, c *thrift2.THBaseServiceClient) error) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		// Before the breaker: a call after cleanup is our mistake, whatever
		// state HBase was last in.
		return ErrClosed
	}
	return p.breaker.Do(ctx, hbaseFailed, func(ctx context.Context) error { return p.attempt(ctx, timeout, idempotent, fn) })
}

// hbaseFailed says whether err counts against HBase: every error but an
// illegal argument, which is the request's fault, and a closed pool, ours.
func hbaseFailed(err error) bool {
	var argErr *thrift2.TIllegalArgument
	return !errors.As(err, &argErr) && !errors.Is(err, ErrClosed)
}

// attempt is call without the breaker.
func (p *pool) attempt(ctx context.Context, timeout time.Duration, idempotent bool, fn func(ctx context.Context, c *thrift2.THBaseServiceClient) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return err
		}
		err = p.callOn(ctx, c, timeout, fn)
		if err == nil {
			p.put(c, true)
			return nil
		}
		healthy := isApplicationError(err)
		p.put(c, healthy)
		if healthy || !reused || !idempotent || attempt > 0 || ctx.Err() != nil || isTimeout(err) {
			return p.explain(ctx, err)
		}
	}
}

func (p *pool) callOn(ctx context.Context, c *conn, timeout time.Duration, fn func(ctx context.Context, c *thrift2.THBaseServiceClient) error) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.nc.SetDeadline(deadline); err != nil {
		return err
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.nc.SetDeadline(longAgo)
		close(interrupted)
	})
	err := fn(ctx, c.client)
	if !stop() {
		// The interrupt ran (or is running): wait, so it cannot move the deadline
		// of whoever uses this connection next. The connection is not reused
		// unless the call had already succeeded.
		<-interrupted
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// gatewayError is an HBase error the gateway reported (TIOError,
// TIllegalArgument), spelt with its message: the generated types print pointers.
type gatewayError struct {
	msg string
	err error
}

func (e *gatewayError) Error() string { return e.msg }
func (e *gatewayError) Unwrap() error { return e.err }

// explain turns a socket deadline into the reason for it, and a gateway error
// into its message.
func (p *pool) explain(ctx context.Context, err error) error {
	var ioErr *thrift2.TIOError
	if errors.As(err, &ioErr) {
		return &gatewayError{msg: "hbase: " + firstLine(ioErr.GetMessage()), err: err}
	}
	var argErr *thrift2.TIllegalArgument
	if errors.As(err, &argErr) {
		return &gatewayError{msg: "hbase: illegal argument: " + firstLine(argErr.GetMessage()), err: err}
	}
	if isTimeout(err) {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return err
}

// isApplicationError reports whether err was sent by the gateway as a Thrift
// reply (an HBase error, a bad argument, an unknown method): the connection is
// then still in step and can be reused.
func isApplicationError(err error) bool {
	var ioErr *thrift2.TIOError
	var argErr *thrift2.TIllegalArgument
	var appErr thrift.TApplicationException
	return errors.As(err, &ioErr) || errors.As(err, &argErr) || errors.As(err, &appErr)
}

// firstLine cuts a Java exception message at its first line: the gateway
// appends whole stack traces to some.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
