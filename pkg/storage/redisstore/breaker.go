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
type breakerHook struct{ b *breaker.Breaker }

func (h breakerHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h breakerHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.b.Do(ctx, redisFailed, func(ctx context.Context) error { return next(ctx, cmd) })
	}
}

func (h breakerHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := h.b.Do(ctx, redisFailed, func(ctx context.Context) error { return next(ctx, cmds) })
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
