package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// markedScript returns a script that applies the items of ARGV (stride values
// each, the first two a partition and an offset) to KEYS[1] with apply, a Lua
// statement over ARGV[i + 2] and on, skipping the items that KEYS[2] (the
// hash: partition → newest offset applied) says were applied, and records the
// newest offset it applied per partition: one script, so the counts and the
// marks that make a redelivery count once cannot part. The marks are read once
// per partition before any is written, so items sharing an offset all apply.
// Offsets are compared as decimal strings, shorter first: a Lua number holds
// no more than 53 bits.
func markedScript(stride int, apply string) *redis.Script {
	return redis.NewScript(fmt.Sprintf(`
local function newer(o, than)
  return not than or #o > #than or (#o == #than and o > than)
end
local done, newest, applied = {}, {}, 0
for i = 1, #ARGV, %d do
  local p, o = ARGV[i], ARGV[i + 1]
  if done[p] == nil then done[p] = redis.call('HGET', KEYS[2], p) end
  if newer(o, done[p]) then
    %s
    applied = applied + 1
    if newer(o, newest[p]) then newest[p] = o end
  end
end
for p, o in pairs(newest) do redis.call('HSET', KEYS[2], p, o) end
return applied
`, stride, apply))
}

var (
	incrScores = markedScript(4, `redis.call('ZINCRBY', KEYS[1], ARGV[i + 3], ARGV[i + 2])`)
	incrCounts = markedScript(5, fmt.Sprintf(`redis.call('HINCRBY', KEYS[1], '%s' .. ARGV[i + 2], ARGV[i + 3])
    redis.call('HINCRBY', KEYS[1], '%s' .. ARGV[i + 2], ARGV[i + 4])`, layout.FieldExposures, layout.FieldClicks))
)

// markArgs starts the ARGV of one marked item.
func markArgs(args []any, m storage.Mark) []any {
	return append(args, m.Stream(), strconv.FormatInt(m.Offset, 10))
}

// runMarked runs a markedScript, returning how many items it applied.
func (s *sortedSets) runMarked(ctx context.Context, script *redis.Script, key, applied string, args []any) (int, error) {
	if len(args) == 0 {
		return 0, nil
	}
	n, err := script.Run(ctx, s.rdb, []string{key, applied}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("apply to %s: %w", key, err)
	}
	return n, nil
}

// IncrScores adds the increments newer than applied's marks, in one script.
func (s *sortedSets) IncrScores(ctx context.Context, key, applied string, incrs []layout.MarkedScore) (int, error) {
	args := make([]any, 0, 4*len(incrs))
	for _, in := range incrs {
		args = append(markArgs(args, in.Mark), strconv.FormatInt(in.ID, 10), strconv.FormatFloat(in.By, 'g', -1, 64))
	}
	return s.runMarked(ctx, incrScores, key, applied, args)
}

// IncrCounts adds the counts newer than applied's marks, in one script.
func (s *sortedSets) IncrCounts(ctx context.Context, key, applied string, counts []layout.MarkedCounts) (int, error) {
	args := make([]any, 0, 5*len(counts))
	for _, c := range counts {
		args = append(markArgs(args, c.Mark), c.User, c.Exposures, c.Clicks)
	}
	return s.runMarked(ctx, incrCounts, key, applied, args)
}

// decay is Decay in one script, so of two racing coolings the second finds
// the stamp at its now (or later) and decays nothing. It rewrites the whole
// list, which coolFloor keeps to the articles still warm.
var decay = redis.NewScript(`
local now, last = tonumber(ARGV[1]), redis.call('GET', KEYS[2])
if last then
  last = tonumber(last)
  if now <= last then return 0 end
  local f = 2 ^ ((last - now) / tonumber(ARGV[2]))
  local floor = tonumber(ARGV[3])
  local zs = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #zs, 2 do
    local score = tonumber(zs[i + 1]) * f
    if score < floor then
      redis.call('ZREM', KEYS[1], zs[i])
    else
      redis.call('ZADD', KEYS[1], score, zs[i])
    end
  end
end
redis.call('SET', KEYS[2], ARGV[1])
return 1
`)

// Decay decays key by the time since stamp, in one script.
func (s *sortedSets) Decay(ctx context.Context, key, stamp string, now time.Time, halfLife time.Duration, floor float64) error {
	halfLifeMs := float64(halfLife) / float64(time.Millisecond)
	err := decay.Run(ctx, s.rdb, []string{key, stamp}, now.UnixMilli(), halfLifeMs, floor).Err()
	if err != nil {
		return fmt.Errorf("decay %s: %w", key, err)
	}
	return nil
}

// scanCount is the COUNT hint of HSCAN and SSCAN: pieces small enough not to
// stall the server, large enough to read a strategy of a million readers in
// a few thousand round trips.
const scanCount = 1000

// Counts reads the hash key with HSCAN. A field may come back twice (the hash
// rehashing meanwhile); it reads the same both times.
func (s *sortedSets) Counts(ctx context.Context, key string) (map[string]storage.UserCounts, error) {
	out := map[string]storage.UserCounts{}
	iter := s.rdb.HScan(ctx, key, 0, "", scanCount).Iterator()
	for iter.Next(ctx) {
		field := iter.Val()
		if !iter.Next(ctx) {
			break
		}
		s.count(out, key, field, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("hscan %s: %w", key, err)
	}
	return out, nil
}

// count reads one field of a counters hash into out; one outside the layout
// is reported.
func (s *sortedSets) count(out map[string]storage.UserCounts, key, field, value string) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		s.bad.ReportMember(key, field, fmt.Errorf("%w: counter %.40q is not an integer", storage.ErrMalformed, value))
		return
	}
	if user, ok := strings.CutPrefix(field, layout.FieldExposures); ok {
		c := out[user]
		c.Exposures = n
		out[user] = c
	} else if user, ok := strings.CutPrefix(field, layout.FieldClicks); ok {
		c := out[user]
		c.Clicks = n
		out[user] = c
	} else {
		s.bad.ReportMember(key, field, fmt.Errorf("%w: not a counter field", storage.ErrMalformed))
	}
}

// AddNames adds names to the set key.
func (s *sortedSets) AddNames(ctx context.Context, key string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	members := make([]any, len(names))
	for i, n := range names {
		members[i] = n
	}
	if err := s.rdb.SAdd(ctx, key, members...).Err(); err != nil {
		return fmt.Errorf("sadd %s: %w", key, err)
	}
	return nil
}

// Names reads the set key with SSCAN, dropping the names it returns twice.
func (s *sortedSets) Names(ctx context.Context, key string) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	iter := s.rdb.SScan(ctx, key, 0, "", scanCount).Iterator()
	for iter.Next(ctx) {
		if n := iter.Val(); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("sscan %s: %w", key, err)
	}
	return names, nil
}
