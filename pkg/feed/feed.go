// Package feed is the vocabulary every service speaks (DESIGN.md §4, §5): a
// strategy and the recall sources and sort model it names, a feed request, the
// page it gets, a recalled candidate. Routing builds a Strategy from the A/B plan,
// reco-center serves a Request with it, recall and sort read their part of it;
// protobuf types stop at each service's gRPC adapter.
package feed

import (
	"errors"
	"fmt"
)

// Channel ids: 0 is the all-channels "recommend" feed, every article belongs to
// it besides its own channel. NumChannels is the one place the count lives: the
// public API validates channel_id against it and the offline build writes every
// channel below it.
const (
	ChannelAll  int32 = 0
	NumChannels int32 = 25
)

// ValidChannel reports whether ch is a channel id.
func ValidChannel(ch int32) bool { return ch >= 0 && ch < NumChannels }

// Source is a recall source; the numbers are the original's recall ids, which
// the track logs and the A/B configuration name.
type Source int32

// The recall sources of DESIGN.md §5.
const (
	SourceALS     Source = 100 // offline ALS collaborative filtering
	SourceContent Source = 101 // offline content similarity
	SourceOnline  Source = 102 // online, from recent clicks
	SourceNew     Source = 103 // the channel's newest articles
	SourceHot     Source = 104 // the channel's hottest articles
	SourceSimilar Source = 105 // similar articles (article_recommend)
)

// FeedSource reports whether s can feed a refresh (100..104; 105 serves
// article_recommend only).
func (s Source) FeedSource() bool { return s >= SourceALS && s <= SourceHot }

// Model is a sort model id (200 logistic regression, 201 the second CTR model);
// a model's file is model.Path(dir, id).
type Model int32

// Strategy is a recall + sort + mix combination (the original's RAParam.COMBINE):
// the one strategy type from the A/B plan's YAML to the ranker.
type Strategy struct {
	// Name is the experiment (or combination of experiments) that chose it; every
	// track string carries it so CTR can be computed per strategy.
	Name string `yaml:"-"`
	// Recall is the sources in priority order: an id offered by several keeps the
	// first.
	Recall []Source `yaml:"recall"`
	Sort   Model    `yaml:"sort"`
	// NewRatio and HotRatio are the shares of a refresh mixed in from the
	// channel's newest and hottest articles.
	NewRatio float64 `yaml:"new_ratio"`
	HotRatio float64 `yaml:"hot_ratio"`
}

// Validate reports the first part of s that cannot be served.
func (s Strategy) Validate() error {
	if len(s.Recall) == 0 {
		return errors.New("recall: at least one source is required")
	}
	for _, r := range s.Recall {
		if !r.FeedSource() {
			return fmt.Errorf("recall: source %d is not one of %d..%d", r, SourceALS, SourceHot)
		}
	}
	if s.Sort <= 0 {
		return fmt.Errorf("sort: a model id is required, got %d", s.Sort)
	}
	if s.NewRatio < 0 || s.HotRatio < 0 || s.NewRatio+s.HotRatio > 1 {
		return fmt.Errorf("new_ratio and hot_ratio must be non-negative and sum to at most 1, got %v and %v", s.NewRatio, s.HotRatio)
	}
	return nil
}

// MaxArticles bounds one page wherever a request arrives; routing's
// max_article_num may only lower it.
const MaxArticles = 1000

// Request is one user_recommend call, validated at the public API.
type Request struct {
	User    string
	Channel int32
	// N is article_num: how many ids a refresh serves.
	N int
	// Timestamp is the request's time_stamp in milliseconds.
	Timestamp int64
	Strategy  Strategy
	// Anonymous users share an id: they get hot and new articles and no history.
	Anonymous bool
}

// Validate reports the first field of r that is out of range, in words a caller
// can act on.
func (r Request) Validate() error {
	if r.User == "" {
		return errors.New("user_id must not be empty")
	}
	if !ValidChannel(r.Channel) {
		return fmt.Errorf("channel_id must be 0..%d, got %d", NumChannels-1, r.Channel)
	}
	if r.N < 1 || r.N > MaxArticles {
		return fmt.Errorf("article_num must be 1..%d, got %d", MaxArticles, r.N)
	}
	if r.Timestamp <= 0 {
		return fmt.Errorf("time_stamp must be positive, got %d", r.Timestamp)
	}
	if r.Strategy.Name == "" {
		return errors.New("strategy must be set")
	}
	if err := r.Strategy.Validate(); err != nil {
		return fmt.Errorf("strategy %s: %w", r.Strategy.Name, err)
	}
	return nil
}

// Page is what the reader sees.
type Page struct {
	IDs []int64
	// Timestamp is the stamp to page back with; 0 when there is nothing older.
	Timestamp int64
	// History is true for a history page, which is not a new exposure.
	History bool
}

// Candidate is a recalled article and the source that offered it first.
type Candidate struct {
	ID     int64
	Source Source
}

// ReadRuns are the recall runs of a recall-set source (100–102) up to Through:
// what a recall read, to be consumed once its candidates are safely queued.
type ReadRuns struct {
	Source  Source
	Through int64
}
