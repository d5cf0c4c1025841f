package offline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/train"
)

// Models 200 and 201 learn P(click | shown) from impressions: one sample per
// shown article, labelled clicked or not, over exactly the feature vector the sort
// service builds (model.Features) from the stored features. Training samples
// take the user's weights as they were just before the impression; hold-out
// samples take the stored (final) weights, as serving does.
//
// Model 201 is a factorization machine: besides the logistic model's linear
// terms it learns a k-dimensional factor per feature and scores every pair of
// features by the dot product of their factors. That is what lets it use the
// user's taste (weights 1..9) against the article's topic coordinates (vector
// dims 0..8), a product no linear model can express. An FM was chosen over
// Wide & Deep (the original's plan) because it captures those crosses with 2k
// parameters, trains in seconds by SGD without a framework, and fits the model
// file format as one more kind.
//
// The popularity baseline scores an article by its clicks in the training days
// before the sample's day (all training days for the hold-out), mapped to a
// probability by Platt scaling for its log-loss.

type sample struct {
	art   int32
	group int32 // the behaviour (impression list) it came from
	day   int16
	label bool
	user  [model.UserWeightsLen]float64
}

// sampleSet is samples with the corpus their features come from; it is a
// train.Samples.
type sampleSet struct {
	c *corpus
	s []sample
}

func (s *sampleSet) Len() int         { return len(s.s) }
func (s *sampleSet) Label(i int) bool { return s.s[i].label }

// Features builds the model input exactly as the sort service does: the
// article's stored features and the user's weights for the article's channel.
func (s *sampleSet) Features(i int, x []float64) {
	sm := &s.s[i]
	model.Features(x, s.c.channel[sm.art], s.c.features[sm.art], sm.user[:])
}

// samples replays every user's clicks in time order, building the training
// samples (unclicked ones kept at rate negRate) and the hold-out samples, and
// leaves each user's final profile in b.profiles.
func (b *build) samples(negRate float64) {
	rng := rand.New(rand.NewPCG(b.opts.Seed, 0x94d049bb133111eb))
	b.train, b.holdout = &sampleSet{c: b.c}, &sampleSet{c: b.c}
	b.profiles = make([]profile, len(b.u.names))
	for ui := range b.u.names {
		p := &b.profiles[ui]
		for _, a := range b.u.history[ui] {
			p.click(b.c, a)
		}
		for _, r := range b.u.trainRows[ui] {
			bh := &b.ds.Behaviors[r]
			d := int16(b.dayOf(bh.Time))
			for _, im := range bh.Impressions {
				if !im.Clicked && rng.Float64() >= negRate {
					continue
				}
				a := b.c.index[im.Article]
				sm := sample{art: a, group: r, day: d, label: im.Clicked}
				p.weights(b.c.channel[a], sm.user[:])
				b.train.s = append(b.train.s, sm)
			}
			for _, im := range bh.Impressions {
				if im.Clicked {
					p.click(b.c, b.c.index[im.Article])
				}
			}
		}
		for _, r := range b.u.holdoutRows[ui] {
			for _, im := range b.ds.Behaviors[r].Impressions {
				a := b.c.index[im.Article]
				sm := sample{art: a, group: r, label: im.Clicked}
				p.weights(b.c.channel[a], sm.user[:])
				b.holdout.s = append(b.holdout.s, sm)
			}
		}
	}
}

// negativeRate is the share of unclicked training impressions to keep for
// NegativesPerClick of them per click.
func (b *build) negativeRate() float64 {
	var pos, neg float64
	for _, bh := range b.ds.Behaviors {
		if !bh.Time.Before(b.cutoff) {
			continue
		}
		for _, im := range bh.Impressions {
			if im.Clicked {
				pos++
			} else {
				neg++
			}
		}
	}
	if neg == 0 {
		return 1
	}
	return min(1, b.opts.NegativesPerClick*pos/neg)
}

func (b *build) trainModels(ctx context.Context, prog *progress) error {
	negRate := b.negativeRate()
	bar := prog.start("samples", 1)
	b.samples(negRate)
	bar.finish("%d training samples (unclicked kept at rate %.3f), %d hold-out samples", b.train.Len(), negRate, b.holdout.Len())

	version := b.opts.Version.UTC().Format(time.RFC3339)
	for i, spec := range []struct {
		id  int32
		cfg train.Config
		fit func(context.Context, int32, string, train.Samples, train.Config) (*model.Model, error)
	}{
		{200, b.opts.Logistic, train.Logistic},
		{201, b.opts.FM, train.FM},
	} {
		cfg := spec.cfg
		cfg.Seed, cfg.NegativeRate = b.opts.Seed+uint64(spec.id), negRate
		bar := prog.start(fmt.Sprintf("model %d", spec.id), cfg.Epochs)
		cfg.Progress = func(int, int) { bar.add(1) }
		m, err := spec.fit(ctx, spec.id, version, b.train, cfg)
		if err != nil {
			return err
		}
		b.models[i] = m
		bar.finish("%s over %d samples, %d epochs", m.Kind, b.train.Len(), cfg.Epochs)
	}

	scores := make([]float64, b.train.Len())
	labels := make([]bool, b.train.Len())
	for i, sm := range b.train.s {
		scores[i] = math.Log1p(b.clicksBefore(sm.art, int(sm.day)))
		labels[i] = sm.label
	}
	b.platt[0], b.platt[1] = train.Platt(scores, labels, negRate)
	return nil
}
