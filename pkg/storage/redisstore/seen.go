package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// claimUnseen is the serve-time claim (DESIGN §4 "no repeats"): in one script,
// so two refreshes offering one id cannot both get it, and a set that is not
// yet a copy of history (no marker "0": evicted, or Redis restarted empty)
// claims nothing. The seen sets are plain sets: all-integer members are kept as
// an intset, 4 bytes an id for ids below 2^31, with no false positives.
var claimUnseen = redis.NewScript(`
if ARGV[2] == '0' then
  if redis.call('SISMEMBER', KEYS[1], '0') == 0 then return false end
  if KEYS[2] ~= KEYS[1] and redis.call('SISMEMBER', KEYS[2], '0') == 0 then return false end
end
local claimed = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 and redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    claimed[#claimed + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return claimed
`)

// ClaimUnseen claims ids in key that neither key nor also holds, in one
// script (ARGV: ttl ms, anySet as 1 or 0, the ids).
func (s *sortedSets) ClaimUnseen(ctx context.Context, key, also string, ids []int64, ttl time.Duration, anySet bool) ([]int64, bool, error) {
	if also == "" {
		also = key
	}
	args := make([]any, 2, 2+len(ids))
	args[0], args[1] = pexpireTTL(ttl).Milliseconds(), "0"
	if anySet {
		args[1] = "1"
	}
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

// stampKey is the string beside a seen set holding its stamp; it shares the
// set's hash tag, so one script may touch both in Redis Cluster.
func stampKey(seen string) string { return seen + ":last" }

// seedSeen adds the marker and the ids (ARGV[3..]) to the set KEYS[1], raises
// its stamp KEYS[2] to ARGV[2] unless later already, and expires both after
// ARGV[1] ms. One script, so a refresh racing with the seed never sees a set
// seeded without its stamp, nor a stamp lowered under it.
var seedSeen = redis.NewScript(`
redis.call('SADD', KEYS[1], '0', unpack(ARGV, 3))
local last = tonumber(redis.call('GET', KEYS[2]))
if not last or last < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
`)

// SeedSeen adds ids and the marker to key and records last, in one script.
func (s *sortedSets) SeedSeen(ctx context.Context, key string, ids []int64, last int64, ttl time.Duration) error {
	// unpack() is bounded by Lua's stack: seed big histories in pieces, the
	// stamp with the last one (a set seeded in part claims nothing yet).
	for len(ids) > seedPiece {
		if err := s.rdb.SAdd(ctx, key, members(ids[:seedPiece])...).Err(); err != nil {
			return fmt.Errorf("seed %s: %w", key, err)
		}
		ids = ids[seedPiece:]
	}
	args := append([]any{pexpireTTL(ttl).Milliseconds(), last}, members(ids)...)
	if err := seedSeen.Run(ctx, s.rdb, []string{key, stampKey(key)}, args...).Err(); err != nil {
		return fmt.Errorf("seed %s: %w", key, err)
	}
	return nil
}

// seedPiece is how many ids one SADD of a seed carries.
const seedPiece = 4096

func members(ids []int64) []any {
	m := make([]any, len(ids))
	for i, id := range ids {
		m[i] = strconv.FormatInt(id, 10)
	}
	return m
}

// popUnseen is PopUnseen in one script: KEYS queue, seen, also, seen's stamp;
// ARGV ttl ms, n, at. It answers false when a set is not seeded, {0, last}
// for a history page, and otherwise {1, last, dry, claimed, malformed}:
// members that are not ids are popped (they could never be served) and
// returned apart, for the caller to report.
var popUnseen = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[2], '0') == 0 then return false end
if KEYS[3] ~= KEYS[2] and redis.call('SISMEMBER', KEYS[3], '0') == 0 then return false end
local n, at, last = tonumber(ARGV[2]), tonumber(ARGV[3]), '0'
if at > 0 then
  last = redis.call('GET', KEYS[4])
  if not last or not tonumber(last) then return false end
  if at <= tonumber(last) then return {0, last} end
  redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[1])
end
local claimed, bad, dry = {}, {}, 0
while #claimed < n do
  local want = n - #claimed
  local popped = redis.call('ZPOPMAX', KEYS[1], want)
  for i = 1, #popped, 2 do
    local m = popped[i]
    if #m > 19 or not string.find(m, '^[1-9]%d*$') then
      bad[#bad + 1] = m
    elseif redis.call('SISMEMBER', KEYS[3], m) == 0 and redis.call('SADD', KEYS[2], m) == 1 then
      claimed[#claimed + 1] = m
    end
  end
  if #popped < 2 * want then dry = 1 break end
end
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return {1, last, dry, claimed, bad}
`)

// PopUnseen pops and claims in one script.
func (s *sortedSets) PopUnseen(ctx context.Context, queue, seen, also string, at int64, n int, ttl time.Duration) (layout.Popped, error) {
	if also == "" {
		also = seen
	}
	keys := []string{queue, seen, also, stampKey(seen)}
	res, err := popUnseen.Run(ctx, s.rdb, keys, pexpireTTL(ttl).Milliseconds(), n, at).Slice()
	if errors.Is(err, redis.Nil) {
		return layout.Popped{}, nil
	}
	if err != nil {
		return layout.Popped{}, fmt.Errorf("pop unseen from %s: %w", queue, err)
	}
	p, err := s.popped(queue, res)
	if err != nil {
		return layout.Popped{}, fmt.Errorf("pop unseen from %s: %w", queue, err)
	}
	return p, nil
}

// popped reads popUnseen's answer.
func (s *sortedSets) popped(queue string, res []any) (layout.Popped, error) {
	p := layout.Popped{Seeded: true}
	if len(res) < 2 {
		return p, fmt.Errorf("%w: answer of %d values", storage.ErrMalformed, len(res))
	}
	last, _ := res[1].(string)
	var err error
	if p.Last, err = strconv.ParseInt(last, 10, 64); err != nil {
		return p, fmt.Errorf("%w: stamp %q", storage.ErrMalformed, last)
	}
	if res[0] == int64(0) {
		p.Older = true
		return p, nil
	}
	if len(res) != 5 {
		return p, fmt.Errorf("%w: answer of %d values", storage.ErrMalformed, len(res))
	}
	p.Dry = res[2] == int64(1)
	claimed, _ := res[3].([]any)
	bad, _ := res[4].([]any)
	for _, m := range bad {
		s.member(queue, m) // reports it
	}
	p.IDs = make([]int64, 0, len(claimed))
	for _, m := range claimed {
		if id, ok := s.member(queue, m); ok {
			p.IDs = append(p.IDs, id)
		}
	}
	return p, nil
}
