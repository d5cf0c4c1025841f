package offline

import (
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

// A user's weights are model.Profile's (the definition lives there, shared with
// the nearline job). Profiles are replayed in time order, so a training
// impression sees only the clicks before it (no label leaks into its own
// features), and the profile stored for serving is the one after every click
// the build knows.

// profile is the state a user's weights are computed from.
type profile struct{ model.Profile }

func (p *profile) click(c *corpus, a int32) { p.Click(c.channel[a], c.topic(a)) }

// weights writes the user's weights for ch into dst (UserWeightsLen), and says
// whether the user has any (false: all zero, no cell).
func (p *profile) weights(ch int32, dst []float64) bool { return p.Weights(ch, dst) }
