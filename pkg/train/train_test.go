package train

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

func TestAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []bool
		want   float64
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		{"reversed", []float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		{"one swap", []float64{0.1, 0.3, 0.2, 0.9}, []bool{false, false, true, true}, 0.75},
		{"tie across classes", []float64{0.1, 0.5, 0.5}, []bool{false, false, true}, 0.75},
	}
	for _, tt := range tests {
		if got := AUC(tt.scores, tt.labels); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: AUC = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := AUC([]float64{1, 2}, []bool{true, true}); !math.IsNaN(got) {
		t.Errorf("AUC of one class = %v, want NaN", got)
	}
}

// TestPerImpression checks MIND's metrics against values worked out by hand
// for small impressions.
func TestPerImpression(t *testing.T) {
	log2 := math.Log2
	type impression struct {
		scores []float64
		labels []bool
	}
	tests := []struct {
		name                    string
		imp                     impression
		auc, mrr, ndcg5, ndcg10 float64
	}{
		{
			// Ranked: unclicked, clicked, unclicked, clicked. Of the 4
			// clicked-unclicked pairs only (0.8, 0.3) is in order.
			"clicks at ranks 2 and 4",
			impression{[]float64{0.9, 0.8, 0.3, 0.1}, []bool{false, true, false, true}},
			0.25, (1.0/2 + 1.0/4) / 2,
			(1/log2(3) + 1/log2(5)) / (1 + 1/log2(3)), (1/log2(3) + 1/log2(5)) / (1 + 1/log2(3)),
		},
		{
			// 12 shown, the one click ranked 7th: 5 of 11 unclicked below it;
			// outside the first 5, inside the first 10 at discount log2(8) = 3.
			"one click at rank 7 of 12",
			impression{[]float64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, []bool{false, false, false, false, false, false, true, false, false, false, false, false}},
			5.0 / 11, 1.0 / 7, 0, 1.0 / 3,
		},
		{
			// All tied: the click is at each of the 4 ranks with chance 1/4.
			"all tied",
			impression{[]float64{0.5, 0.5, 0.5, 0.5}, []bool{true, false, false, false}},
			0.5, (1 + 1.0/2 + 1.0/3 + 1.0/4) / 4,
			(1 + 1/log2(3) + 1.0/2 + 1/log2(5)) / 4, (1 + 1/log2(3) + 1.0/2 + 1/log2(5)) / 4,
		},
		{
			"perfect",
			impression{[]float64{3, 2, 1}, []bool{true, true, false}},
			1, (1 + 1.0/2) / 2, 1, 1,
		},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	var scores []float64
	var labels []bool
	var groups []int32
	var want ImpressionMetrics
	for g, tt := range tests {
		got := PerImpression(tt.imp.scores, tt.imp.labels, make([]int32, len(tt.imp.scores)))
		if got.Impressions != 1 || !near(got.AUC, tt.auc) || !near(got.MRR, tt.mrr) || !near(got.NDCG5, tt.ndcg5) || !near(got.NDCG10, tt.ndcg10) {
			t.Errorf("%s: got %+v, want AUC %v MRR %v nDCG@5 %v nDCG@10 %v", tt.name, got, tt.auc, tt.mrr, tt.ndcg5, tt.ndcg10)
		}
		scores = append(scores, tt.imp.scores...)
		labels = append(labels, tt.imp.labels...)
		for range tt.imp.scores {
			groups = append(groups, int32(g))
		}
		want.AUC += tt.auc / float64(len(tests))
		want.MRR += tt.mrr / float64(len(tests))
		want.NDCG5 += tt.ndcg5 / float64(len(tests))
		want.NDCG10 += tt.ndcg10 / float64(len(tests))
	}
	// Together, with an impression without a click and one with only clicks,
	// which MIND's metrics do not average: the mean of the four.
	scores = append(scores, 0.1, 0.2, 0.7, 0.9)
	labels = append(labels, false, false, true, true)
	groups = append(groups, 10, 10, 11, 11)
	got := PerImpression(scores, labels, groups)
	if got.Impressions != len(tests) || !near(got.AUC, want.AUC) || !near(got.MRR, want.MRR) || !near(got.NDCG5, want.NDCG5) || !near(got.NDCG10, want.NDCG10) {
		t.Errorf("all impressions: got %+v, want %+v over %d", got, want, len(tests))
	}
	if got := PerImpression([]float64{1, 2}, []bool{true, true}, []int32{1, 1}); got.Impressions != 0 || !math.IsNaN(got.AUC) || !math.IsNaN(got.NDCG10) {
		t.Errorf("nothing to average: got %+v, want NaN over 0", got)
	}
}

func TestLogLoss(t *testing.T) {
	got := LogLoss([]float64{0.5, 0.5}, []bool{true, false})
	if math.Abs(got-math.Ln2) > 1e-12 {
		t.Errorf("LogLoss = %v, want ln 2", got)
	}
	if got := LogLoss([]float64{0, 1}, []bool{true, false}); math.IsInf(got, 0) || got < 30 {
		t.Errorf("LogLoss of certain mistakes = %v, want large and finite", got)
	}
}

// synthetic is a sample set drawn from a known rule.
type synthetic struct {
	x      [][]float64
	labels []bool
}

func (s *synthetic) Len() int                    { return len(s.x) }
func (s *synthetic) Label(i int) bool            { return s.labels[i] }
func (s *synthetic) Features(i int, x []float64) { copy(x, s.x[i]) }

// draw makes count samples whose features have non-zero means and unequal
// scales (as the real input has: a one-hot channel, small vector entries),
// labelled by logit(x).
func draw(count int, seed uint64, logit func(x []float64) float64) *synthetic {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &synthetic{}
	for range count {
		x := make([]float64, n)
		x[model.ChannelInputs+1+rng.IntN(24)] = 1
		for j := 1; j < model.StoredFeatures; j++ {
			x[j] = 0.3 + 0.1*rng.NormFloat64()*float64(1+j%3)
		}
		s.x = append(s.x, x)
		s.labels = append(s.labels, rng.Float64() < model.Sigmoid(logit(x)))
	}
	return s
}

func scoreAll(m *model.Model, s *synthetic) []float64 {
	out := make([]float64, s.Len())
	for i, x := range s.x {
		out[i] = m.Predict(x)
	}
	return out
}

var quick = Config{Epochs: 3, LearningRate: 0.05, L2: 1e-6, Factors: 8, InitStd: 0.01, Seed: 7, NegativeRate: 1}

func TestLogisticLearnsALinearRule(t *testing.T) {
	rule := func(x []float64) float64 { return -1 + 8*(x[5]-0.3) - 6*(x[40]-0.3) + 0.8*x[model.ChannelInputs+7] }
	trainSet, test := draw(8000, 1, rule), draw(3000, 2, rule)
	m, err := Logistic(context.Background(), 200, "v", trainSet, quick)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != model.KindLogistic || m.ID != 200 || len(m.Factors) != 0 {
		t.Fatalf("got kind %q id %d with %d factor rows", m.Kind, m.ID, len(m.Factors))
	}
	truth := make([]float64, test.Len())
	for i, x := range test.x {
		truth[i] = rule(x)
	}
	got, best := AUC(scoreAll(m, test), test.labels), AUC(truth, test.labels)
	if got < best-0.02 {
		t.Errorf("AUC = %.3f, the rule itself scores %.3f", got, best)
	}
	// Calibrated: the mean prediction is near the click rate.
	var mean, rate float64
	for i, p := range scoreAll(m, test) {
		mean += p
		if test.labels[i] {
			rate++
		}
	}
	mean, rate = mean/float64(test.Len()), rate/float64(test.Len())
	if math.Abs(mean-rate) > 0.02 {
		t.Errorf("mean prediction %.3f, click rate %.3f", mean, rate)
	}
}

func TestFMLearnsAnInteractionLogisticCannot(t *testing.T) {
	// The label depends only on the product of two centred features.
	rule := func(x []float64) float64 { return 60 * (x[3] - 0.3) * (x[110] - 0.3) }
	trainSet, test := draw(12000, 3, rule), draw(3000, 4, rule)
	lr, err := Logistic(context.Background(), 200, "v", trainSet, quick)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := FM(context.Background(), 201, "v", trainSet, quick)
	if err != nil {
		t.Fatal(err)
	}
	aucLR, aucFM := AUC(scoreAll(lr, test), test.labels), AUC(scoreAll(fm, test), test.labels)
	t.Logf("AUC logistic %.3f, fm %.3f", aucLR, aucFM)
	if aucLR > 0.56 || aucFM < 0.65 {
		t.Errorf("AUC logistic %.3f (want about 0.5), fm %.3f (want well above)", aucLR, aucFM)
	}
}

// byChannel is a sample set whose click rate depends on the channel alone,
// built through model.Features as the build and the sort service build it.
type byChannel struct {
	channel []int32
	noise   [][]float64 // the article's stored features: noise
	labels  []bool
}

func (s *byChannel) Len() int         { return len(s.labels) }
func (s *byChannel) Label(i int) bool { return s.labels[i] }
func (s *byChannel) Features(i int, x []float64) {
	model.Features(x, s.channel[i], s.noise[i], nil)
}

// TestChannelRatesAreLearnedWhateverTheIDOrder: clicks that depend on the
// channel alone, in no order of the channel ids, are learned channel by
// channel, and moving the rates to other ids moves the predictions with them:
// each model scores a channel by what it learned of that channel, not by where
// its id falls. (With the id as a number, the score could only rise or fall
// with it: channels 2 and 20 could not both beat 11.)
func TestChannelRatesAreLearnedWhateverTheIDOrder(t *testing.T) {
	rates := []float64{0.02, 0.30, 0.05, 0.20, 0.10, 0.25, 0.03, 0.15}
	for _, ids := range [][]int32{
		{1, 2, 3, 4, 5, 6, 7, 8},
		{20, 2, 11, 24, 5, 13, 17, 9}, // the same rates on other, shuffled ids
	} {
		rng := rand.New(rand.NewPCG(11, 11))
		s := &byChannel{}
		const perChannel = 2000
		clicks := make([]float64, len(ids))
		for range perChannel {
			for c, ch := range ids {
				noise := make([]float64, model.ArticleFeatureLen)
				for j := range noise {
					noise[j] = 0.1 * rng.NormFloat64()
				}
				s.channel = append(s.channel, ch)
				s.noise = append(s.noise, noise)
				s.labels = append(s.labels, rng.Float64() < rates[c])
				if s.labels[len(s.labels)-1] {
					clicks[c]++
				}
			}
		}
		for name, fit := range map[string]func(context.Context, int32, string, Samples, Config) (*model.Model, error){"logistic": Logistic, "fm": FM} {
			m, err := fit(context.Background(), 200, "v", s, quick)
			if err != nil {
				t.Fatal(err)
			}
			// Each channel's mean prediction over its samples.
			pred := make([]float64, len(ids))
			x := make([]float64, model.NumFeatures)
			for i := range s.Len() {
				s.Features(i, x)
				pred[i%len(ids)] += m.Predict(x) / perChannel
			}
			for c, ch := range ids {
				if got := clicks[c] / perChannel; math.Abs(pred[c]-got) > 0.03 {
					t.Errorf("%s, channels %v: channel %d predicted %.3f, its click rate is %.3f", name, ids, ch, pred[c], got)
				}
			}
			for a := range ids {
				for b := range ids {
					if rates[a] > rates[b]+0.04 && !(pred[a] > pred[b]) {
						t.Errorf("%s, channels %v: channel %d (rate %.2f) predicted %.3f, not above channel %d (rate %.2f) at %.3f",
							name, ids, ids[a], rates[a], pred[a], ids[b], rates[b], pred[b])
					}
				}
			}
		}
	}
}

// TestFoldScoresRawFeatures checks the algebra of fold: the folded model on raw
// x gives the logit the trainer's parameters give on standardised x.
func TestFoldScoresRawFeatures(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	st := &standardiser{}
	for i := range n {
		st.mean[i] = rng.NormFloat64()
		st.std[i] = 0.1 + rng.Float64()
	}
	for _, k := range []int{0, 4} {
		// Small parameters keep the logit where σ is invertible in float64.
		p := newParams(k, 0.05, rng)
		p.bias = rng.NormFloat64()
		for i := range n {
			p.w[i] = 0.05 * rng.NormFloat64()
		}
		m := &model.Model{ID: 1, Features: n, Kind: model.KindLogistic}
		if k > 0 {
			m.Kind = model.KindFM
		}
		fold(p, st, m, 0.25)
		for range 20 {
			x := make([]float64, n)
			for i := range x {
				x[i] = st.mean[i] + rng.NormFloat64()
			}
			z := append([]float64(nil), x...)
			st.apply(z)
			want := p.logit(z) + math.Log(0.25)
			pr := m.Predict(x)
			got := math.Log(pr / (1 - pr))
			if math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
				t.Fatalf("k=%d: folded logit %v, standardised logit %v", k, got, want)
			}
		}
	}
}

func TestTrainingIsDeterministic(t *testing.T) {
	rule := func(x []float64) float64 { return 10 * (x[7] - 0.3) }
	s := draw(3000, 9, rule)
	a, err := FM(context.Background(), 201, "v", s, quick)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FM(context.Background(), 201, "v", s, quick)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("two trainings on the same samples differ")
	}
}

func TestTrainRefusesOneClass(t *testing.T) {
	s := draw(100, 1, func([]float64) float64 { return -100 })
	if _, err := Logistic(context.Background(), 200, "v", s, quick); err == nil {
		t.Error("training on unclicked samples only succeeded")
	}
	bad := quick
	bad.NegativeRate = 0
	if _, err := FM(context.Background(), 201, "v", draw(100, 1, func([]float64) float64 { return 0 }), bad); err == nil {
		t.Error("negative rate 0 accepted")
	}
}

func TestPlatt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	var scores []float64
	var labels []bool
	for range 20000 {
		s := rng.Float64() * 4
		scores = append(scores, s)
		labels = append(labels, rng.Float64() < model.Sigmoid(-2+0.8*s))
	}
	a, b := Platt(scores, labels, 1)
	if math.Abs(a+2) > 0.15 || math.Abs(b-0.8) > 0.08 {
		t.Errorf("Platt = (%.3f, %.3f), want about (-2, 0.8)", a, b)
	}
}
