package offline

import (
	"context"
	"math"
	"math/rand/v2"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

// The article vector (DESIGN.md §5: 100 numbers) is two latent semantic
// projections of the article's TF-IDF row:
//
//   - dims 0..8, the topic coordinates: the article's position in the top 9
//     principal components of its own channel (TF-IDF rows of the channel,
//     centred, truncated SVD). They tell apart the subjects inside a channel —
//     golf from football — and the user's interest weights 1..9 live in the
//     same space (see profile.go), so a ranker with pairwise terms (model 201)
//     can score "this user's taste · this article's topic" directly.
//   - dims 9..99: the top 91 components of a truncated SVD of the whole TF-IDF
//     matrix (latent semantic analysis), which place every article in one space
//     whatever its channel. Article similarity is the cosine of these: the
//     topic coordinates are centred per channel, so in a small channel they
//     would make every pair look unlike.
//
// Both SVDs are randomized (Halko et al.), over the whole news.tsv: an article's
// words are known when it is published.
const (
	topicDims  = 9
	globalDims = model.ArticleVectorLen - topicDims
	vectorLen  = model.ArticleVectorLen
	// globalStart is where the global coordinates begin in an article's
	// features (after the channel and the keyword weights).
	globalStart = 1 + model.KeywordWeightsLen + topicDims
)

// corpus is every article of news.tsv, by index, with what the build derives
// for it.
type corpus struct {
	ids     []int64
	index   map[int64]int32
	channel []int32
	// published is the article's first appearance in an impression (Unix ms),
	// or 0 for an article only ever seen in histories (published before the
	// log).
	published []int64
	// known is published before the build's cutoff: the articles a build at the
	// cutoff knows were shown.
	known []bool
	// fresh is known and published in the FreshDays before the cutoff: the
	// articles recall may offer (news older than that is not worth a slot).
	fresh []bool
	// features is the article's CTR feature vector: channel, 10 keyword weights,
	// the vector; rounded to 6 decimals (what the store holds is what models
	// train on).
	features [][]float64
	// unitVecs holds, per article, the LSA part of its vector (dims 9..99),
	// L2-normalised: what similarity is the cosine of.
	unitVecs  []float64
	byChannel map[int32][]int32
	keywords  [][]string // the article's top keywords, for the build's log
	// vocab, global and topics (per channel) map an article's text to its
	// features: the content model that publishing reuses (contentmodel.go).
	vocab  vocabulary
	global *projection
	topics map[int32]*projection
}

func (c *corpus) unit(a int32) []float64 {
	return c.unitVecs[int(a)*globalDims : int(a+1)*globalDims]
}

// topic is the article's topic coordinates (vector dims 0..8).
func (c *corpus) topic(a int32) []float64 {
	return c.features[a][1+model.KeywordWeightsLen : 1+model.KeywordWeightsLen+topicDims]
}

func newCorpus(articles []dataset.Article) *corpus {
	c := &corpus{
		ids:       make([]int64, len(articles)),
		index:     make(map[int64]int32, len(articles)),
		channel:   make([]int32, len(articles)),
		published: make([]int64, len(articles)),
		known:     make([]bool, len(articles)),
		fresh:     make([]bool, len(articles)),
		byChannel: map[int32][]int32{},
	}
	for i, a := range articles {
		c.ids[i] = a.ID
		c.index[a.ID] = int32(i)
		ch := dataset.Channel(a.Category)
		c.channel[i] = ch
		c.byChannel[ch] = append(c.byChannel[ch], int32(i))
	}
	return c
}

// round6 rounds to 6 decimals, so the JSON of a feature is short and exactly
// the number the models were trained on.
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }

// buildFeatures computes keywords, vectors and the feature values of every
// article.
func (c *corpus) buildFeatures(ctx context.Context, articles []dataset.Article, seed uint64, bar *bar) error {
	t := buildTFIDF(articles)
	c.vocab = t.vocabulary
	bar.add(1)
	rng := rand.New(rand.NewPCG(seed, 0x2545f4914f6cdd1d))
	all := make([]int, len(articles))
	for i := range all {
		all[i] = i
	}
	global, proj := lsa(&t.m, all, false, globalDims, rng)
	c.global = proj
	bar.add(1)
	vecs := make([][]float64, len(articles))
	for i := range vecs {
		vecs[i] = make([]float64, vectorLen)
		copy(vecs[i][topicDims:], global.RawRowView(i))
	}
	c.topics = map[int32]*projection{}
	for ch := range feed.NumChannels {
		if err := ctx.Err(); err != nil {
			return err
		}
		members := c.byChannel[ch]
		if len(members) == 0 {
			continue
		}
		rows := make([]int, len(members))
		for i, a := range members {
			rows[i] = int(a)
		}
		local, proj := lsa(&t.m, rows, true, topicDims, rng)
		c.topics[ch] = proj
		for i, a := range members {
			copy(vecs[a][:topicDims], local.RawRowView(i))
		}
	}
	bar.add(1)
	c.features = make([][]float64, len(articles))
	c.keywords = make([][]string, len(articles))
	c.unitVecs = make([]float64, len(articles)*globalDims)
	for i := range articles {
		kw, words := t.keywords(i, model.KeywordWeightsLen)
		c.features[i] = featureVector(c.channel[i], kw, vecs[i])
		c.keywords[i] = words
		setUnit(c.unit(int32(i)), c.features[i][globalStart:])
	}
	bar.add(1)
	return nil
}

// featureVector is an article's CTR features: its channel, its keyword
// weights and its vector (topic, then global coordinates), rounded.
func featureVector(ch int32, kw, vec []float64) []float64 {
	f := make([]float64, 0, model.ArticleFeatureLen)
	f = append(f, float64(ch))
	for _, w := range kw {
		f = append(f, round6(w))
	}
	for _, v := range vec {
		f = append(f, round6(v))
	}
	return f
}

// setUnit sets u to an article's global coordinates, L2-normalised: what
// similarity is the cosine of.
func setUnit(u, global []float64) {
	copy(u, global)
	if nrm := norm(u); nrm > 0 {
		for j := range u {
			u[j] /= nrm
		}
	}
}
