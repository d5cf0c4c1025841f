// Package redisstore is the Redis backend of storage.Sets (DESIGN.md §3): the
// tier-1 cache, the served claims and the channels' new and hot lists, as the
// sorted sets of layout.SortedSets under the keys package layout names.
//
// Members are article ids spelt as decimal strings, as the original wrote them.
// Every operation is one round trip and atomic on the server: PopMax is ZPOPMAX,
// which removes and returns in one command (the original's ZREVRANGE then ZREM let
// two refreshes serve the same article), and Add sends ZADD and PEXPIRE in one
// MULTI/EXEC so a key never exists without the expiry it was given.
//
// A member that is not an article id (written by something else) affects only
// itself: the read that finds it reports it through the layout.BadCells given
// to Open, removes it (PopMax popped it already; Top sends a ZREM) and serves
// the valid members read with it, reading further to make up for it.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/toutiao-reco/toutiao-reco/pkg/breaker"
	"github.com/toutiao-reco/toutiao-reco/pkg/certs"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// Config addresses one Redis server (or a cluster, through several addresses).
type Config struct {
	// Addrs are host:port addresses: one for a single server, several for a
	// cluster.
	Addrs []string `yaml:"addrs"`
	// Password authenticates to the server; keep it out of logs and out of
	// ConfigMaps: prefer PasswordFile.
	Password string `yaml:"password"`
	// PasswordFile holds the password (a mounted Kubernetes Secret, a file
	// only the service's user reads); read once, when the client is opened.
	// Trailing line breaks are not part of it.
	PasswordFile string `yaml:"password_file"`
	// TLS of the connections to the servers (Redis 6+ with tls-port).
	TLS certs.Client `yaml:"tls"`
	// DB is the database number (the original kept recall keys in 10 and the
	// cache in 8); a cluster has only 0.
	DB int `yaml:"db"`
	// DialTimeout bounds connecting; 0 means go-redis's default (5s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound one socket operation when the caller's
	// context has no earlier deadline; 0 means go-redis's default (3s).
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PoolSize is the number of connections per server; 0 means 10 per CPU.
	PoolSize int `yaml:"pool_size"`
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("addrs: at least one address is required"))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("db must be >= 0, got %d", c.DB))
	}
	if len(c.Addrs) > 1 && c.DB != 0 {
		errs = append(errs, fmt.Errorf("db must be 0 for a cluster, got %d", c.DB))
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s must be >= 0, got %s", d.name, d.d))
		}
	}
	if c.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("pool_size must be >= 0, got %d", c.PoolSize))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("password and password_file: set one, not both"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tls: %w", err))
	}
	return errors.Join(errs...)
}

// Open returns the sets of the server cfg names and a cleanup that closes
// its connections. It does not dial: an unreachable server fails the first call,
// not the start of the process, so a service can start and degrade (DESIGN.md §6).
// The client uses the deadline of each call's context for its socket operations.
func Open(cfg Config, bad *layout.BadCells) (storage.Sets, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid redis config: %w", err)
	}
	password := cfg.Password
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, nil, fmt.Errorf("redis password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	opts := &redis.UniversalOptions{
		Addrs:                 cfg.Addrs,
		Password:              password,
		DB:                    cfg.DB,
		DialTimeout:           cfg.DialTimeout,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		PoolSize:              cfg.PoolSize,
		ContextTimeoutEnabled: true,
	}
	tlsClient, err := certs.NewClient(cfg.TLS, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("redis tls: %w", err)
	}
	if tlsClient != nil {
		// A handshake per connection with the files as they are then, rather
		// than go-redis's TLSConfig, whose CA is fixed (see pkg/certs).
		opts.Dialer = tlsClient.Dialer(&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 5 * time.Minute})
	}
	client := redis.NewUniversalClient(opts)
	client.AddHook(breakerHook{breaker.New("redis", nil)})
	return New(client, bad), client.Close, nil
}

// New returns the sets of client, which the caller owns, reporting malformed
// members to bad (nil: skipped silently). For calls to honour their context's
// deadline, client needs ContextTimeoutEnabled (Open sets it).
func New(client redis.UniversalClient, bad *layout.BadCells) storage.Sets {
	return layout.NewSets(&sortedSets{rdb: client, bad: bad})
}

// sortedSets is layout.SortedSets over go-redis.
type sortedSets struct {
	rdb redis.UniversalClient
	bad *layout.BadCells
}

// maxRefills bounds the extra reads of one PopMax or Top that make up for
// malformed members: each removes at least one, so a set full of them costs a
// few round trips per call, not one per member.
const maxRefills = 8

var _ layout.SortedSets = (*sortedSets)(nil)

// Add sets the scores of members in key and, for ttl > 0, its expiry, in one
// MULTI/EXEC.
func (s *sortedSets) Add(ctx context.Context, key string, members []storage.Scored, ttl time.Duration) error {
	zs := make([]redis.Z, len(members))
	for i, m := range members {
		if math.IsNaN(m.Score) {
			return fmt.Errorf("zadd %s: member %d has score NaN", key, m.ID)
		}
		zs[i] = redis.Z{Score: m.Score, Member: strconv.FormatInt(m.ID, 10)}
	}
	var err error
	switch {
	case len(zs) > 0 && ttl > 0:
		_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.ZAdd(ctx, key, zs...)
			p.PExpire(ctx, key, pexpireTTL(ttl))
			return nil
		})
	case len(zs) > 0:
		err = s.rdb.ZAdd(ctx, key, zs...).Err()
	case ttl > 0:
		err = s.rdb.PExpire(ctx, key, pexpireTTL(ttl)).Err()
	}
	if err != nil {
		return fmt.Errorf("zadd %s: %w", key, err)
	}
	return nil
}

// addAbove scores ARGV[2..] above KEYS[1]'s highest member, the first
// highest, and for ARGV[1] > 0 sets its expiry (ms): reading the highest score
// and adding in one script, so a Store or Boost in between cannot slip an id
// ahead of the boosted ones.
var addAbove = redis.NewScript(`
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local base = (tonumber(top) or 0) + #ARGV
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], base - i + 1, ARGV[i])
end
if tonumber(ARGV[1]) > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
`)

// AddAbove scores ids above every member of key, in one script.
func (s *sortedSets) AddAbove(ctx context.Context, key string, ids []int64, ttl time.Duration) error {
	args := make([]any, 1, 1+len(ids))
	if ttl > 0 {
		args[0] = pexpireTTL(ttl).Milliseconds()
	} else {
		args[0] = 0
	}
	for _, id := range ids {
		args = append(args, strconv.FormatInt(id, 10))
	}
	if err := addAbove.Run(ctx, s.rdb, []string{key}, args...).Err(); err != nil {
		return fmt.Errorf("add above %s: %w", key, err)
	}
	return nil
}

// pexpireTTL rounds ttl down to PEXPIRE's milliseconds, but not to zero, which
// would delete the key.
func pexpireTTL(ttl time.Duration) time.Duration {
	return max(ttl.Truncate(time.Millisecond), time.Millisecond)
}

// PopMax removes and returns up to n members with the highest scores, highest
// first: ZPOPMAX is atomic, so concurrent poppers never share a member.
func (s *sortedSets) PopMax(ctx context.Context, key string, n int) ([]int64, error) {
	if n <= 0 {
		return nil, nil
	}
	var ids []int64
	for want, round := n, 0; want > 0 && round <= maxRefills; round++ {
		zs, err := s.rdb.ZPopMax(ctx, key, int64(want)).Result()
		if err != nil {
			if len(ids) > 0 {
				break // they are popped: serve them, short
			}
			return nil, fmt.Errorf("zpopmax %s: %w", key, err)
		}
		bad := 0
		for _, z := range zs {
			if id, ok := s.member(key, z.Member); ok {
				ids = append(ids, id)
			} else {
				bad++ // popped, so dropped already
			}
		}
		if len(zs) < want {
			break // the set is empty
		}
		want = bad
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

// member reads a member as an article id; one that is not is reported.
func (s *sortedSets) member(key string, m any) (int64, bool) {
	str, ok := m.(string)
	if !ok {
		s.bad.ReportMember(key, fmt.Sprint(m), fmt.Errorf("%w: member of type %T", storage.ErrMalformed, m))
		return 0, false
	}
	return s.bad.Member(key, str)
}

// Top returns up to n members with the highest scores, highest first.
func (s *sortedSets) Top(ctx context.Context, key string, n int) ([]storage.Scored, error) {
	if n <= 0 {
		return nil, nil
	}
	var (
		top []storage.Scored
		bad []any
	)
	for start, want, round := int64(0), int64(n), 0; want > 0 && round <= maxRefills; round++ {
		zs, err := s.rdb.ZRevRangeWithScores(ctx, key, start, start+want-1).Result()
		if err != nil {
			return nil, fmt.Errorf("zrevrange %s: %w", key, err)
		}
		nbad := 0
		for _, z := range zs {
			if id, ok := s.member(key, z.Member); ok {
				top = append(top, storage.Scored{ID: id, Score: z.Score})
			} else {
				bad = append(bad, z.Member)
				nbad++
			}
		}
		if int64(len(zs)) < want {
			break
		}
		start, want = start+want, int64(nbad)
	}
	if len(bad) > 0 {
		// Dropping them is the reader's chore, not its failure: the next read
		// that finds one tries again.
		_ = s.rdb.ZRem(ctx, key, bad...).Err()
	}
	if len(top) == 0 {
		return nil, nil
	}
	return top, nil
}

// Delete removes keys. Each key is its own DEL, pipelined in one round trip, so
// keys of different cluster slots can be deleted together.
func (s *sortedSets) Delete(ctx context.Context, keys ...string) error {
	var err error
	switch len(keys) {
	case 0:
		return nil
	case 1:
		err = s.rdb.Del(ctx, keys[0]).Err()
	default:
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, k)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("del %v: %w", keys, err)
	}
	return nil
}

// parseMember reads a member the server echoes back from those it was sent
// as an article id.
func parseMember(m any) (int64, error) {
	s, ok := m.(string)
	if !ok {
		return 0, fmt.Errorf("%w: member %v is not a string", storage.ErrMalformed, m)
	}
	return storage.ParseID(s)
}
