package model

import (
	"math"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// A reader's 10 interest weights for a channel (DESIGN.md §5), the one
// definition the offline build and the nearline job share:
//
//   - weight 0, interest: the share of the reader's clicks that fell in the
//     channel, shrunk towards 0 for readers with few clicks: n_ch / (n + 5).
//   - weights 1..9, taste: the mean topic coordinates (article vector dims
//     0..8, TopicOf) of the articles clicked in the channel, shrunk the same
//     way: Σ topic / (n_ch + 1).
//
// A reader who never clicked in a channel has no cell for it, which the sort
// service reads as ten zeros: exactly the weights the formulas give. Channel 0,
// the all-channels feed, gets weight 0 = n / (n + 5) (how much the reader
// clicks at all) and zero taste: topic spaces are per channel.
const (
	InterestPrior = 5
	TastePrior    = 1
	// TopicDims is the number of topic coordinates, and of taste weights.
	TopicDims = UserWeightsLen - 1
)

// TopicOf is the topic coordinates of an article's feature vector (channel,
// keyword weights, then the article vector, whose first dims are its topic).
func TopicOf(features []float64) []float64 {
	return features[1+KeywordWeightsLen : 1+KeywordWeightsLen+TopicDims]
}

// Profile is what a reader's weights are computed from.
type Profile struct {
	Clicks   float64
	Channels map[int32]*Taste
}

// Taste is a reader's clicks in one channel.
type Taste struct {
	Clicks float64
	Topic  [TopicDims]float64
}

// Clone returns a copy that shares nothing with p.
func (p Profile) Clone() Profile {
	c := Profile{Clicks: p.Clicks}
	if p.Channels != nil {
		c.Channels = make(map[int32]*Taste, len(p.Channels))
		for ch, t := range p.Channels {
			tc := *t
			c.Channels[ch] = &tc
		}
	}
	return c
}

// Click counts a click on an article of channel ch with topic coordinates
// topic.
func (p *Profile) Click(ch int32, topic []float64) {
	if p.Channels == nil {
		p.Channels = map[int32]*Taste{}
	}
	t := p.Channels[ch]
	if t == nil {
		t = &Taste{}
		p.Channels[ch] = t
	}
	p.Clicks++
	t.Clicks++
	for i, v := range topic[:TopicDims] {
		t.Topic[i] += v
	}
}

// Weights writes the reader's weights for ch into dst (UserWeightsLen) and
// says whether the reader has any (false: all zero, no cell). Weights are
// rounded to 6 decimals, as the stored ones are.
func (p *Profile) Weights(ch int32, dst []float64) bool {
	clear(dst[:UserWeightsLen])
	if ch == feed.ChannelAll {
		if p.Clicks == 0 {
			return false
		}
		dst[0] = round6(p.Clicks / (p.Clicks + InterestPrior))
		return true
	}
	t := p.Channels[ch]
	if t == nil {
		return false
	}
	dst[0] = round6(t.Clicks / (p.Clicks + InterestPrior))
	for i, v := range t.Topic {
		dst[1+i] = round6(v / (t.Clicks + TastePrior))
	}
	return true
}

// ProfileOf recovers the profile stored weights were computed from (byCh: the
// reader's weights per channel, channel 0's included), inverting Weights, so
// the nearline job can add a click to what the build left. Counts come back
// as whole numbers; the 6-decimal rounding of the weights costs the taste sums
// about 1e-6 each.
func ProfileOf(byCh map[int32][]float64) Profile {
	var p Profile
	if w := byCh[feed.ChannelAll]; len(w) > 0 && w[0] > 0 && w[0] < 1 {
		p.Clicks = math.Round(InterestPrior * w[0] / (1 - w[0]))
	}
	for ch, w := range byCh {
		if ch == feed.ChannelAll || len(w) < UserWeightsLen {
			continue
		}
		t := &Taste{Clicks: math.Round(w[0] * (p.Clicks + InterestPrior))}
		if t.Clicks == 0 {
			continue
		}
		for i := range t.Topic {
			t.Topic[i] = w[1+i] * (t.Clicks + TastePrior)
		}
		if p.Channels == nil {
			p.Channels = map[int32]*Taste{}
		}
		p.Channels[ch] = t
	}
	return p
}

// round6 rounds to 6 decimals.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
