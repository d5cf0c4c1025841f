package offline

import (
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

// A user's 10 interest weights for a channel (DESIGN.md §5):
//
//   - weight 0, interest: the share of the user's clicks that fell in the
//     channel, shrunk towards 0 for users with few clicks: n_ch / (n + 5).
//   - weights 1..9, taste: the mean topic coordinates (article vector dims 0..8)
//     of the articles the user clicked in the channel, shrunk the same way:
//     Σ topic / (n_ch + 1).
//
// A user who never clicked in a channel has no cell for it, which the sort
// service reads as ten zeros: exactly the weights the formulas give.
//
// Channel 0, the all-channels feed, gets weight 0 = n / (n + 5) (how much the
// user clicks at all) and zero taste: topic spaces are per channel.
//
// Profiles are replayed in time order, so a training impression sees only the
// clicks before it (no label leaks into its own features), and the profile
// stored for serving is the one after every click the build knows.
const (
	interestPrior = 5
	tastePrior    = 1
)

// profile is the state a user's weights are computed from.
type profile struct {
	clicks float64
	byCh   map[int32]*channelTaste
}

type channelTaste struct {
	clicks float64
	topic  [topicDims]float64
}

func (p *profile) click(c *corpus, a int32) {
	if p.byCh == nil {
		p.byCh = map[int32]*channelTaste{}
	}
	ch := c.channel[a]
	t := p.byCh[ch]
	if t == nil {
		t = &channelTaste{}
		p.byCh[ch] = t
	}
	p.clicks++
	t.clicks++
	for i, v := range c.topic(a) {
		t.topic[i] += v
	}
}

// weights writes the user's weights for ch into dst (UserWeightsLen), and says
// whether the user has any (false: all zero, no cell). Weights are rounded to 6
// decimals, as the stored ones are.
func (p *profile) weights(ch int32, dst []float64) bool {
	clear(dst[:model.UserWeightsLen])
	if ch == feed.ChannelAll {
		if p.clicks == 0 {
			return false
		}
		dst[0] = round6(p.clicks / (p.clicks + interestPrior))
		return true
	}
	t := p.byCh[ch]
	if t == nil {
		return false
	}
	dst[0] = round6(t.clicks / (p.clicks + interestPrior))
	for i, v := range t.topic {
		dst[1+i] = round6(v / (t.clicks + tastePrior))
	}
	return true
}
