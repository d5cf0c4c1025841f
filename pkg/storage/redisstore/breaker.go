package redisstore

import (
	"context"
	"errors"
	"net"

	"github.com/redis/go-redis/v9"

	"github.com/toutiao-reco/toutiao-reco/pkg/breaker"
)

// breakerHook fails commands at once while Redis keeps failing (DESIGN §6), so
// a dead Redis costs a refresh ~0 ms instead of a dial timeout per command.
//
// The commands go-redis sends to set up a new connection (HELLO, CLIENT
// SETINFO) go through the hooks too, inside the command that needed the
// connection: they are part of that command, not calls of their own. Guarded
// again, they would meet the breaker the command holds: a half-open breaker
// lets one probe through, the probe's handshake is refused as a second one,
// and the breaker never closes once every connection died with Redis.
type breakerHook struct{ b *breaker.Breaker }

// guarded marks the context of a command the breaker let through.
type guarded struct{}

func (h breakerHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h breakerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(guarded{}) != nil {
			return next(ctx, cmd)
		}
		return h.b.Do(ctx, redisFailed, func(ctx context.Context) error { return next(context.WithValue(ctx, guarded{}, true), cmd) })
	}
}

func (h breakerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(guarded{}) != nil {
			return next(ctx, cmds)
		}
		err := h.b.Do(ctx, redisFailed, func(ctx context.Context) error { return next(context.WithValue(ctx, guarded{}, true), cmds) })
		if errors.Is(err, breaker.ErrOpen) {
			for _, c := range cmds {
				c.SetErr(err)
			}
		}
		return err
	}
}

// redisFailed says whether err counts against Redis: not a reply it sent (an
// error reply such as NOSCRIPT, or a missing key), which says it is up.
func redisFailed(err error) bool {
	var reply redis.Error
	return !errors.Is(err, redis.Nil) && !errors.As(err, &reply)
}
