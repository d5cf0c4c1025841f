package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// SetLogger sends what go-redis logs of its own (a pool that cannot dial, a
// connection it gave up on) to log as warnings, each distinct message once
// per logEvery: left to itself go-redis prints plain-text lines on stderr,
// beside the processes' JSON, one per failed dial, hundreds a second while
// Redis is down. go-redis has one logger per process, so the last call wins.
func SetLogger(log *zap.Logger) {
	sampled := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, logEvery, 1, 0)
	}))
	redis.SetLogger(redisLogger{sampled.With(zap.String("component", "go-redis"))})
}

// logEvery is how often one go-redis message is logged at most.
const logEvery = time.Minute

type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}
