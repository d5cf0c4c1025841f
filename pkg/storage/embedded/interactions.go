package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// applyMarked calls apply for each item newer than what the hash applied
// remembers for its partition when the call starts (so items sharing an
// offset all apply), and records the newest offset applied per partition
// (field: Mark.Stream, value: offset), in the caller's transaction,
// so with what apply writes.
func applyMarked[T any](tx *bolt.Tx, applied string, items []T, mark func(T) storage.Mark, apply func(T) error) (int, error) {
	if err := checkSetKey(applied); err != nil {
		return 0, err
	}
	h, err := tx.Bucket(bucketHashes).CreateBucketIfNotExists([]byte(applied))
	if err != nil {
		return 0, fmt.Errorf("marks %s: %w", applied, err)
	}
	done, newest := map[string]int64{}, map[string]int64{}
	n := 0
	for _, it := range items {
		m := mark(it)
		stream := m.Stream()
		last, ok := done[stream]
		if !ok {
			if last, err = markOf(h, stream); err != nil {
				return 0, fmt.Errorf("marks %s: %w", applied, err)
			}
			done[stream] = last
		}
		if m.Offset <= last {
			continue
		}
		if err := apply(it); err != nil {
			return 0, err
		}
		n++
		if o, ok := newest[stream]; !ok || m.Offset > o {
			newest[stream] = m.Offset
		}
	}
	for stream, o := range newest {
		if err := h.Put([]byte(stream), encodeInt64(o)); err != nil {
			return 0, fmt.Errorf("marks %s: %w", applied, err)
		}
	}
	return n, nil
}

// markOf is the newest offset of stream (Mark.Stream) that the marks h
// hold, -1 for none (offsets are >= 0).
func markOf(h *bolt.Bucket, stream string) (int64, error) {
	v := h.Get([]byte(stream))
	if v == nil {
		return -1, nil
	}
	o, ok := decodeInt64(v)
	if !ok {
		return 0, fmt.Errorf("partition %s: %w: offset is %d bytes", stream, storage.ErrMalformed, len(v))
	}
	return o, nil
}

// IncrScores adds the increments newer than applied's marks to key, in one
// transaction.
func (s *sortedSets) IncrScores(ctx context.Context, key, applied string, incrs []layout.MarkedScore) (int, error) {
	if err := checkSetKey(key); err != nil {
		return 0, err
	}
	var n int
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := openSet(tx, key, s.db.now().UnixMilli())
		if err != nil {
			return err
		}
		n, err = applyMarked(tx, applied, incrs, func(in layout.MarkedScore) storage.Mark { return in.Mark }, func(in layout.MarkedScore) error {
			if b == nil { // created by the first increment: Redis keeps no empty sets
				if b, err = tx.Bucket(bucketSets).CreateBucket([]byte(key)); err != nil {
					return fmt.Errorf("add to %s: %w", key, err)
				}
			}
			name := member(in.ID)
			old, _, err := scoreOf(b, name)
			if err == nil {
				err = putName(b, name, old+in.By)
			}
			if err != nil {
				return fmt.Errorf("add to %s: %w", key, err)
			}
			return nil
		})
		return err
	})
	return n, err
}

// Decay decays key by the time since stamp, in one transaction.
func (s *sortedSets) Decay(ctx context.Context, key, stamp string, now time.Time, halfLife time.Duration, floor float64) error {
	for _, k := range []string{key, stamp} {
		if err := checkSetKey(k); err != nil {
			return err
		}
	}
	nowMs := now.UnixMilli()
	return s.db.update(ctx, func(tx *bolt.Tx) error {
		stamps := tx.Bucket(bucketStrings)
		if v := stamps.Get([]byte(stamp)); v != nil {
			last, ok := decodeInt64(v)
			if !ok {
				return fmt.Errorf("decay %s: stamp %s: %w: %d bytes", key, stamp, storage.ErrMalformed, len(v))
			}
			if nowMs <= last {
				return nil
			}
			halfLifeMs := float64(halfLife) / float64(time.Millisecond)
			if err := s.scale(tx, key, math.Pow(2, float64(last-nowMs)/halfLifeMs), floor); err != nil {
				return fmt.Errorf("decay %s: %w", key, err)
			}
		}
		return stamps.Put([]byte(stamp), encodeInt64(nowMs))
	})
}

// scale multiplies every score of key by f, dropping the members that fall
// below floor.
func (s *sortedSets) scale(tx *bolt.Tx, key string, f, floor float64) error {
	b, err := openSet(tx, key, s.db.now().UnixMilli())
	if b == nil || err != nil {
		return err
	}
	var entries [][]byte
	c := b.Cursor()
	for k, _ := c.Seek([]byte{tagScore}); k != nil && k[0] == tagScore; k, _ = c.Next() {
		entries = append(entries, clone(k)) // rewritten below: not while the cursor walks them
	}
	var doomed [][]byte
	for _, k := range entries {
		score, name, ok := parseScoreKey(k)
		if ok && score*f >= floor {
			if err := putName(b, name, score*f); err != nil {
				return err
			}
		} else {
			doomed = append(doomed, k)
		}
	}
	return dropEntries(tx, b, key, doomed)
}

// countsLen is the size of a reader's counters in a counters hash: exposures
// and clicks, 8 bytes each.
const countsLen = 16

// IncrCounts adds the counts newer than applied's marks to the hash key
// (field: user), in one transaction.
func (s *sortedSets) IncrCounts(ctx context.Context, key, applied string, counts []layout.MarkedCounts) (int, error) {
	if err := checkSetKey(key); err != nil {
		return 0, err
	}
	var n int
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		h, err := tx.Bucket(bucketHashes).CreateBucketIfNotExists([]byte(key))
		if err != nil {
			return fmt.Errorf("add to %s: %w", key, err)
		}
		n, err = applyMarked(tx, applied, counts, func(c layout.MarkedCounts) storage.Mark { return c.Mark }, func(c layout.MarkedCounts) error {
			old, ok := decodeCounts(h.Get([]byte(c.User)))
			if !ok {
				old = storage.UserCounts{} // a malformed one starts afresh, as Counts skips it
			}
			v := binary.BigEndian.AppendUint64(nil, uint64(old.Exposures+c.Exposures))
			v = binary.BigEndian.AppendUint64(v, uint64(old.Clicks+c.Clicks))
			if err := h.Put([]byte(c.User), v); err != nil {
				return fmt.Errorf("add to %s user %.40q: %w", key, c.User, err)
			}
			return nil
		})
		return err
	})
	return n, err
}

// decodeCounts reads a reader's counters; nil is none yet.
func decodeCounts(v []byte) (storage.UserCounts, bool) {
	if v == nil {
		return storage.UserCounts{}, true
	}
	if len(v) != countsLen {
		return storage.UserCounts{}, false
	}
	return storage.UserCounts{
		Exposures: int64(binary.BigEndian.Uint64(v[:8])),
		Clicks:    int64(binary.BigEndian.Uint64(v[8:])),
	}, true
}

// Counts returns every reader's counters in the hash key.
func (s *sortedSets) Counts(ctx context.Context, key string) (map[string]storage.UserCounts, error) {
	out := map[string]storage.UserCounts{}
	err := s.hash(ctx, key, func(field, v []byte) {
		if c, ok := decodeCounts(v); ok {
			out[string(field)] = c
		} else {
			s.db.bad.ReportMember(key, string(field), fmt.Errorf("%w: counters of %d bytes", storage.ErrMalformed, len(v)))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AddNames adds names to the set key, a hash of names to nothing.
func (s *sortedSets) AddNames(ctx context.Context, key string, names []string) error {
	if err := checkSetKey(key); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	return s.db.update(ctx, func(tx *bolt.Tx) error {
		h, err := tx.Bucket(bucketHashes).CreateBucketIfNotExists([]byte(key))
		if err != nil {
			return fmt.Errorf("add to %s: %w", key, err)
		}
		for _, n := range names {
			if err := h.Put([]byte(n), nil); err != nil {
				return fmt.Errorf("add %.40q to %s: %w", n, key, err)
			}
		}
		return nil
	})
}

// Names returns the names in the set key.
func (s *sortedSets) Names(ctx context.Context, key string) ([]string, error) {
	var names []string
	if err := s.hash(ctx, key, func(field, _ []byte) { names = append(names, string(field)) }); err != nil {
		return nil, err
	}
	return names, nil
}

// hash calls fn with each field of the hash key and its value, in one read
// transaction; an absent hash has none.
func (s *sortedSets) hash(ctx context.Context, key string, fn func(field, value []byte)) error {
	if err := checkSetKey(key); err != nil {
		return err
	}
	return s.db.view(ctx, func(tx *bolt.Tx) error {
		h := tx.Bucket(bucketHashes).Bucket([]byte(key))
		if h == nil {
			return nil
		}
		return h.ForEach(func(k, v []byte) error {
			fn(k, v)
			return nil
		})
	})
}
