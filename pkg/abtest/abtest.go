// Package abtest assigns users to strategies (DESIGN.md §5).
//
// A plan has layers; each layer hashes the user id with its own salt into a fixed
// number of buckets, and its experiments own disjoint bucket ranges. Experiments
// in one layer are therefore mutually exclusive, and layers are orthogonal: a
// user's bucket in one layer says nothing about their bucket in another. A user
// starts from the default strategy; each layer whose experiment covers their
// bucket then replaces the strategy (strategy:) or overrides parts of it (sort:,
// recall:, new_ratio:, hot_ratio:). The assignment is a pure function of the user
// id and the plan: deterministic and sticky.
//
// With an empty salt and 16 buckets, a user's bucket is the first hex digit of
// md5(user_id), exactly the original's bucketing; Original is that plan.
package abtest

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// Original is the original system's A/B configuration: all five recall sources
// and model 200 in both arms, users whose md5 starts with 0–d in Algo-1 and e–f in
// Algo-2.
const Original = `
default: Algo-1
strategies:
  Algo-1: {recall: [100, 101, 102, 103, 104], sort: 200, new_ratio: 0.1, hot_ratio: 0.1}
  Algo-2: {recall: [100, 101, 102, 103, 104], sort: 200, new_ratio: 0.1, hot_ratio: 0.1}
layers:
  - name: original
    salt: ""
    buckets: 16
    experiments:
      - {buckets: "0-13", strategy: Algo-1}
      - {buckets: "14-15", strategy: Algo-2}
`

// Layer is one hash space with mutually exclusive experiments.
type Layer struct {
	Name        string       `yaml:"name"`
	Salt        string       `yaml:"salt"`
	Buckets     int          `yaml:"buckets"`
	Experiments []Experiment `yaml:"experiments"`
}

// Experiment owns a set of a layer's buckets.
type Experiment struct {
	// Name is what the track strings carry; it defaults to Strategy.
	Name string `yaml:"name"`
	// Buckets are inclusive ranges, e.g. "0-13" or "0-3,8".
	Buckets string `yaml:"buckets"`
	// Strategy, if set, replaces the user's strategy with a named one.
	Strategy string `yaml:"strategy"`
	// The rest, if set, override one part of it.
	Sort     *feed.Model   `yaml:"sort"`
	Recall   []feed.Source `yaml:"recall"`
	NewRatio *float64      `yaml:"new_ratio"`
	HotRatio *float64      `yaml:"hot_ratio"`

	owned []bool
}

// Plan is a parsed, validated A/B configuration.
type Plan struct {
	Default    string                   `yaml:"default"`
	Strategies map[string]feed.Strategy `yaml:"strategies"`
	Layers     []Layer                  `yaml:"layers"`
}

// Parse decodes and validates a plan; unknown keys are errors.
func Parse(b []byte) (*Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse strategies: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("invalid strategies: %w", err)
	}
	return &p, nil
}

// Load reads and parses the plan at path; an empty path is Original.
func Load(path string) (*Plan, error) {
	if path == "" {
		return Parse([]byte(Original))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read strategies: %w", err)
	}
	return Parse(b)
}

// Bucket is user's bucket in a layer: the first 32 bits of md5(salt:user) scaled
// to [0, buckets). With no salt and 16 buckets it is the first hex digit of
// md5(user).
func Bucket(salt string, buckets int, user string) int {
	key := user
	if salt != "" {
		key = salt + ":" + user
	}
	sum := md5.Sum([]byte(key))
	return int(uint64(binary.BigEndian.Uint32(sum[:4])) * uint64(buckets) >> 32)
}

// Assign returns user's strategy, named by the experiments that chose it (joined
// by "|"), as the track strings carry it.
func (p *Plan) Assign(user string) feed.Strategy {
	s := p.Strategies[p.Default]
	var names []string
	for _, l := range p.Layers {
		b := Bucket(l.Salt, l.Buckets, user)
		for _, e := range l.Experiments {
			if !e.owned[b] {
				continue
			}
			if e.Strategy != "" {
				s = p.Strategies[e.Strategy]
			}
			if e.Sort != nil {
				s.Sort = *e.Sort
			}
			if e.Recall != nil {
				s.Recall = e.Recall
			}
			if e.NewRatio != nil {
				s.NewRatio = *e.NewRatio
			}
			if e.HotRatio != nil {
				s.HotRatio = *e.HotRatio
			}
			names = append(names, e.Name)
			break
		}
	}
	s.Name = p.Default
	if len(names) > 0 {
		s.Name = strings.Join(names, "|")
	}
	return s
}

func (p *Plan) validate() error {
	if len(p.Strategies) == 0 {
		return errors.New("strategies: at least one is required")
	}
	for name, s := range p.Strategies {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("strategies.%s: %w", name, err)
		}
	}
	if _, ok := p.Strategies[p.Default]; !ok {
		return fmt.Errorf("default: %q is not a strategy", p.Default)
	}
	for i := range p.Layers {
		l := &p.Layers[i]
		if l.Buckets < 1 || l.Buckets > 1<<16 {
			return fmt.Errorf("layers[%d] (%s): buckets must be 1..65536, got %d", i, l.Name, l.Buckets)
		}
		owner := make([]string, l.Buckets)
		for j := range l.Experiments {
			e := &l.Experiments[j]
			if e.Name == "" {
				e.Name = e.Strategy
			}
			where := fmt.Sprintf("layers[%d] (%s) experiment %q", i, l.Name, e.Name)
			if e.Name == "" {
				return fmt.Errorf("layers[%d] (%s) experiments[%d]: name or strategy is required", i, l.Name, j)
			}
			if _, ok := p.Strategies[e.Strategy]; e.Strategy != "" && !ok {
				return fmt.Errorf("%s: %q is not a strategy", where, e.Strategy)
			}
			owned, err := parseBuckets(e.Buckets, l.Buckets)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			for b, own := range owned {
				if own && owner[b] != "" {
					return fmt.Errorf("%s: bucket %d is already %q's: experiments in one layer must not overlap", where, b, owner[b])
				}
				if own {
					owner[b] = e.Name
				}
			}
			e.owned = owned
			probe := p.Strategies[p.Default]
			if e.Sort != nil {
				probe.Sort = *e.Sort
			}
			if e.Recall != nil {
				probe.Recall = e.Recall
			}
			if e.NewRatio != nil {
				probe.NewRatio = *e.NewRatio
			}
			if e.HotRatio != nil {
				probe.HotRatio = *e.HotRatio
			}
			if err := probe.Validate(); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
	}
	return nil
}

// parseBuckets parses "0-13,15" into membership of [0, n).
func parseBuckets(spec string, n int) ([]bool, error) {
	owned := make([]bool, n)
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("buckets: a range such as 0-13 is required")
	}
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 0 || b >= n || a > b {
			return nil, fmt.Errorf("buckets: %q is not a range within 0..%d", part, n-1)
		}
		for i := a; i <= b; i++ {
			owned[i] = true
		}
	}
	return owned, nil
}
