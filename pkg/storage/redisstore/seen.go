package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimUnseen is the serve-time claim (DESIGN §4 "no repeats"): in one script,
// so two refreshes offering one id cannot both get it, and a set that is not
// yet a copy of history (no marker "0": evicted, or Redis restarted empty)
// claims nothing. The seen sets are plain sets: all-integer members are kept as
// an intset, 4 bytes an id for ids below 2^31, with no false positives.
var claimUnseen = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], '0') == 0 then return false end
if KEYS[2] ~= KEYS[1] and redis.call('SISMEMBER', KEYS[2], '0') == 0 then return false end
local claimed = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 and redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    claimed[#claimed + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return claimed
`)

// ClaimUnseen claims ids in key that neither key nor also holds, in one script.
func (s *sortedSets) ClaimUnseen(ctx context.Context, key, also string, ids []int64, ttl time.Duration) ([]int64, bool, error) {
	if also == "" {
		also = key
	}
	args := make([]any, 1, 1+len(ids))
	args[0] = pexpireTTL(ttl).Milliseconds()
	for _, id := range ids {
		args = append(args, strconv.FormatInt(id, 10))
	}
	res, err := claimUnseen.Run(ctx, s.rdb, []string{key, also}, args...).StringSlice()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("claim in %s: %w", key, err)
	}
	claimed := make([]int64, 0, len(res))
	for _, m := range res {
		id, err := parseMember(m)
		if err != nil {
			return nil, false, fmt.Errorf("claim in %s: %w", key, err)
		}
		claimed = append(claimed, id)
	}
	return claimed, true, nil
}

// SeedSeen adds ids and the marker to key and sets its expiry, in one MULTI.
func (s *sortedSets) SeedSeen(ctx context.Context, key string, ids []int64, ttl time.Duration) error {
	members := make([]any, 0, len(ids)+1)
	members = append(members, "0")
	for _, id := range ids {
		members = append(members, strconv.FormatInt(id, 10))
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, members...)
		p.PExpire(ctx, key, pexpireTTL(ttl))
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed %s: %w", key, err)
	}
	return nil
}
