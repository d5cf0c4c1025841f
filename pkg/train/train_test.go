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

func TestGroupAUC(t *testing.T) {
	scores := []float64{0.1, 0.9, 0.8, 0.2, 0.5, 0.6}
	labels := []bool{false, true, false, true, true, true}
	groups := []int32{1, 1, 2, 2, 3, 3} // group 3 has one class and is skipped
	got, n := GroupAUC(scores, labels, groups)
	if n != 2 || got != 0.5 {
		t.Errorf("GroupAUC = %v over %d groups, want 0.5 over 2", got, n)
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
// scales (as the real layout has: a channel id up to 24, small vector entries),
// labelled by logit(x).
func draw(count int, seed uint64, logit func(x []float64) float64) *synthetic {
	rng := rand.New(rand.NewPCG(seed, 1))
	s := &synthetic{}
	for range count {
		x := make([]float64, n)
		x[0] = float64(1 + rng.IntN(24))
		for j := 1; j < n; j++ {
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
	rule := func(x []float64) float64 { return -1 + 8*(x[5]-0.3) - 6*(x[40]-0.3) + 0.05*x[0] }
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
