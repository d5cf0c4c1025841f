package layout

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// coolFloor is the score below which cooling drops an article from a hot
// list: a thousandth of a click is no longer hot, and dropping it keeps the
// list (which every cooling rewrites whole) from growing with every article
// ever clicked.
const coolFloor = 1e-3

// maxStrategyLen bounds a strategy name, which comes from free text in track
// strings and becomes part of a key: a name longer than any configured one is
// a malformed line, not a strategy.
const maxStrategyLen = 200

// AddHeat counts each channel's heats in one engine call per channel: the
// marks of a key and its scores change together. On a store error the
// channels written before it stay written; the batch can be applied again,
// since what was applied is skipped.
func (s *sets) AddHeat(ctx context.Context, heats []storage.Heat) (int, error) {
	for _, h := range heats {
		if err := checkHeat(h); err != nil {
			return 0, fmt.Errorf("add heat of article %d to channel %d: %w", h.Article, h.Channel, err)
		}
	}
	channels, byChannel := groupBy(heats, func(h storage.Heat) (int32, MarkedScore) {
		return h.Channel, MarkedScore{Mark: h.Mark, ID: h.Article, By: h.Weight}
	})
	return perKey(channels, byChannel, func(ch int32, incrs []MarkedScore) (int, error) {
		n, err := s.s.IncrScores(ctx, HotKey(ch), HotAppliedKey(ch), incrs)
		if err != nil {
			return n, fmt.Errorf("add heat to %s: %w", HotKey(ch), err)
		}
		return n, nil
	})
}

func checkHeat(h storage.Heat) error {
	if err := checkMark(h.Mark); err != nil {
		return err
	}
	if h.Article <= 0 {
		return errors.New("an article id is positive")
	}
	if !(h.Weight > 0) || math.IsInf(h.Weight, 0) {
		return fmt.Errorf("weight must be positive and finite, got %v", h.Weight)
	}
	return nil
}

// checkMark refuses what the engines cannot order: they compare offsets as
// non-negative integers.
func checkMark(m storage.Mark) error {
	if m.Partition < 0 || m.Offset < 0 {
		return fmt.Errorf("mark %d@%d: partition and offset must be >= 0", m.Partition, m.Offset)
	}
	return nil
}

// Cool decays the hot list by the time since its stamp, dropping articles
// below coolFloor, in one engine call.
func (s *sets) Cool(ctx context.Context, channel int32, now time.Time, halfLife time.Duration) error {
	if halfLife <= 0 {
		return fmt.Errorf("cool %s: half-life must be positive, got %s", HotKey(channel), halfLife)
	}
	if err := s.s.Decay(ctx, HotKey(channel), HotCooledKey(channel), now, halfLife, coolFloor); err != nil {
		return fmt.Errorf("cool %s: %w", HotKey(channel), err)
	}
	return nil
}

// AddExposures registers the batch's strategies, then counts each strategy's
// exposures in one engine call. Registering first means no counters exist
// that Counters cannot find; a strategy registered by a call that failed
// after reads as having no readers. On a store error the strategies written
// before it stay written; applying the batch again is safe.
func (s *sets) AddExposures(ctx context.Context, exposures []storage.Exposure) (int, error) {
	for i, e := range exposures {
		if err := checkExposure(e); err != nil {
			return 0, fmt.Errorf("add exposures (element %d, strategy %.40q, user %.40q): %w", i, e.Strategy, e.User, err)
		}
	}
	strategies, byStrategy := groupBy(exposures, func(e storage.Exposure) (string, MarkedCounts) {
		return e.Strategy, MarkedCounts{Mark: e.Mark, User: e.User, UserCounts: storage.UserCounts{Exposures: e.Exposures, Clicks: e.Clicks}}
	})
	if err := s.s.AddNames(ctx, StrategiesKey, strategies); err != nil {
		return 0, fmt.Errorf("register strategies in %s: %w", StrategiesKey, err)
	}
	return perKey(strategies, byStrategy, func(st string, counts []MarkedCounts) (int, error) {
		n, err := s.s.IncrCounts(ctx, CountersKey(st), CountersAppliedKey(st), counts)
		if err != nil {
			return n, fmt.Errorf("add exposures to %s: %w", CountersKey(st), err)
		}
		return n, nil
	})
}

func checkExposure(e storage.Exposure) error {
	if err := checkMark(e.Mark); err != nil {
		return err
	}
	switch {
	case e.Strategy == "":
		return errors.New("empty strategy name")
	case len(e.Strategy) > maxStrategyLen:
		return fmt.Errorf("strategy name of %d bytes, more than %d", len(e.Strategy), maxStrategyLen)
	case e.User == "":
		return errors.New("empty user id")
	case e.Exposures < 0 || e.Clicks < 0:
		return fmt.Errorf("counts must be >= 0, got %d exposures, %d clicks", e.Exposures, e.Clicks)
	}
	return nil
}

// Counters reads every registered strategy's counters; a strategy without
// readers is absent.
func (s *sets) Counters(ctx context.Context) (map[string]map[string]storage.UserCounts, error) {
	strategies, err := s.s.Names(ctx, StrategiesKey)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", StrategiesKey, err)
	}
	out := make(map[string]map[string]storage.UserCounts, len(strategies))
	for _, st := range strategies {
		users, err := s.s.Counts(ctx, CountersKey(st))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", CountersKey(st), err)
		}
		if len(users) > 0 {
			out[st] = users
		}
	}
	return out, nil
}

// groupBy splits items by key, each converted as split returns it, keeping
// their order within a key; keys come in order of first appearance.
func groupBy[T any, K comparable, U any](items []T, split func(T) (K, U)) ([]K, map[K][]U) {
	var keys []K
	groups := map[K][]U{}
	for _, it := range items {
		k, u := split(it)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], u)
	}
	return keys, groups
}

// perKey calls apply with each key's group, in order, and sums what they
// applied; it stops at the first error.
func perKey[K comparable, T any](keys []K, groups map[K][]T, apply func(K, []T) (int, error)) (int, error) {
	applied := 0
	for _, k := range keys {
		n, err := apply(k, groups[k])
		applied += n
		if err != nil {
			return applied, err
		}
	}
	return applied, nil
}
