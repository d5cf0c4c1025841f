// Package train fits the CTR models of the sort service — logistic regression
// (model 200) and a factorization machine (model 201) over the model input of
// pkg/model (the 121 stored values, the channel one-hot) — and measures
// rankers (MIND's per-impression AUC, MRR and nDCG; pooled AUC; log-loss).
//
// Both trainers run the same loop: features are standardised (zero mean, unit
// variance, from one pass over the samples; 0/1 indicators such as the
// channel's one-hot inputs are left as they are), then fitted by per-sample
// SGD with Adagrad step sizes (row-wise for the FM factors) and L2
// regularisation, in an order shuffled from a seed, on one goroutine: the same
// samples and config give the same model, bit for bit.
// The standardisation is folded back into the parameters before the model is
// returned, so a model file scores raw features exactly as the trainer scored
// standardised ones (for the FM this moves terms between the factors, the
// linear weights and the bias; see fold).
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

// Samples is a labelled data set the trainers read by index.
type Samples interface {
	Len() int
	Label(i int) bool
	// Features writes sample i's model input (model.NumFeatures values) into x.
	Features(i int, x []float64)
}

// Config tunes a trainer.
type Config struct {
	Epochs       int
	LearningRate float64
	// L2 is the regularisation weight of every parameter but the bias.
	L2 float64
	// Factors is the FM's factor length k (FM only).
	Factors int
	// InitStd is the standard deviation of the FM's initial factors.
	InitStd float64
	Seed    uint64
	// NegativeRate is the share of unclicked samples kept when the set was built
	// (1 if none were dropped). Dropping negatives at rate r raises every logit
	// by -log r; the bias is lowered by as much, so predictions are calibrated
	// for the full data.
	NegativeRate float64
	// Progress, if set, is told after each epoch.
	Progress func(epoch, epochs int)
}

// Validate reports the first unusable field.
func (c Config) Validate(fm bool) error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs must be at least 1, got %d", c.Epochs)
	case !(c.LearningRate > 0):
		return fmt.Errorf("learning rate must be positive, got %v", c.LearningRate)
	case !(c.L2 >= 0):
		return fmt.Errorf("l2 must be >= 0, got %v", c.L2)
	case !(c.NegativeRate > 0 && c.NegativeRate <= 1):
		return fmt.Errorf("negative rate must be in (0, 1], got %v", c.NegativeRate)
	case fm && c.Factors < 1:
		return fmt.Errorf("factors must be at least 1, got %d", c.Factors)
	}
	return nil
}

// ErrNoData is returned for a sample set without both a clicked and an
// unclicked sample: there is nothing to separate.
var ErrNoData = errors.New("training needs both clicked and unclicked samples")

const n = model.NumFeatures

// standardiser holds each feature's mean and standard deviation, and which
// features never vary.
//
// An indicator (a feature that is only ever 0 or 1: a channel's one-hot input)
// keeps mean 0 and deviation 1. Standardising it would divide it by √(p(1-p)),
// which for a rare channel scales its steps by about 1/√p: a channel seen in a
// few dozen samples, all clicked, would get a weight in the tens.
type standardiser struct {
	mean, std [n]float64
	constant  [n]bool
}

func newStandardiser(ctx context.Context, s Samples) (*standardiser, error) {
	var st standardiser
	var sum, sumSq [n]float64
	var indicator [n]bool
	for j := range indicator {
		indicator[j] = true
	}
	x := make([]float64, n)
	pos := 0
	for i := range s.Len() {
		if i%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		s.Features(i, x)
		for j, v := range x {
			sum[j] += v
			sumSq[j] += v * v
			indicator[j] = indicator[j] && (v == 0 || v == 1)
		}
		if s.Label(i) {
			pos++
		}
	}
	if pos == 0 || pos == s.Len() {
		return nil, ErrNoData
	}
	cnt := float64(s.Len())
	for j := range n {
		st.mean[j] = sum[j] / cnt
		v := sumSq[j]/cnt - st.mean[j]*st.mean[j]
		// A constant feature carries nothing; dividing by 1 keeps it at 0.
		st.std[j], st.constant[j] = 1, true
		if v > 1e-12 {
			st.std[j], st.constant[j] = math.Sqrt(v), false
		}
		if indicator[j] && !st.constant[j] {
			st.mean[j], st.std[j] = 0, 1
		}
	}
	return &st, nil
}

func (st *standardiser) apply(x []float64) {
	for j := range x {
		x[j] = (x[j] - st.mean[j]) / st.std[j]
	}
}

// params are a model's parameters over standardised features, with their
// Adagrad accumulators.
type params struct {
	bias    float64
	w       [n]float64
	v       [n][]float64 // nil rows for logistic regression
	k       int
	gBias   float64
	gw      [n]float64
	gv      [n]float64 // row-wise: one accumulator per factor row
	sums    []float64  // per-factor Σ v_if x_i of the current sample
	squares []float64
	grad    []float64
}

func newParams(k int, initStd float64, rng *rand.Rand) *params {
	p := &params{k: k, gBias: 1e-8, sums: make([]float64, k), squares: make([]float64, k), grad: make([]float64, k)}
	for i := range n {
		p.gw[i], p.gv[i] = 1e-8, 1e-8
		if k > 0 {
			p.v[i] = make([]float64, k)
			for f := range k {
				p.v[i][f] = initStd * rng.NormFloat64()
			}
		}
	}
	return p
}

// logit scores standardised x, leaving the factor sums of x in p.sums.
func (p *params) logit(x []float64) float64 {
	z := p.bias
	for i, xi := range x {
		z += p.w[i] * xi
	}
	if p.k == 0 {
		return z
	}
	clear(p.sums)
	clear(p.squares)
	for i, xi := range x {
		if xi == 0 {
			continue
		}
		for f, vf := range p.v[i] {
			t := vf * xi
			p.sums[f] += t
			p.squares[f] += t * t
		}
	}
	for f := range p.k {
		z += 0.5 * (p.sums[f]*p.sums[f] - p.squares[f])
	}
	return z
}

// step takes one Adagrad step on the log-loss gradient g (= p - y) of x.
func (p *params) step(x []float64, g, lr, l2 float64) {
	p.gBias += g * g
	p.bias -= lr * g / math.Sqrt(p.gBias)
	for i, xi := range x {
		d := g*xi + l2*p.w[i]
		p.gw[i] += d * d
		p.w[i] -= lr * d / math.Sqrt(p.gw[i])
		if p.k == 0 || xi == 0 {
			continue
		}
		// Row-wise Adagrad: one accumulator per feature's factor row (the mean
		// squared gradient of its k entries), as embedding trainers use; one
		// square root per feature instead of per factor entry.
		v := p.v[i]
		var sq float64
		for f := range p.k {
			d := g*xi*(p.sums[f]-v[f]*xi) + l2*v[f]
			p.grad[f] = d
			sq += d * d
		}
		p.gv[i] += sq / float64(p.k)
		rate := lr / math.Sqrt(p.gv[i])
		for f, d := range p.grad {
			v[f] -= rate * d
		}
	}
}

// Logistic fits model id as logistic regression (kind "logistic").
func Logistic(ctx context.Context, id int32, version string, s Samples, cfg Config) (*model.Model, error) {
	if err := cfg.Validate(false); err != nil {
		return nil, fmt.Errorf("train model %d: %w", id, err)
	}
	p, st, err := fit(ctx, s, cfg, 0)
	if err != nil {
		return nil, fmt.Errorf("train model %d: %w", id, err)
	}
	m := &model.Model{ID: id, Kind: model.KindLogistic, Version: version, Features: n}
	fold(p, st, m, cfg.NegativeRate)
	return m, m.Validate()
}

// FM fits model id as a factorization machine (kind "fm") with cfg.Factors
// factors per feature.
func FM(ctx context.Context, id int32, version string, s Samples, cfg Config) (*model.Model, error) {
	if err := cfg.Validate(true); err != nil {
		return nil, fmt.Errorf("train model %d: %w", id, err)
	}
	p, st, err := fit(ctx, s, cfg, cfg.Factors)
	if err != nil {
		return nil, fmt.Errorf("train model %d: %w", id, err)
	}
	m := &model.Model{ID: id, Kind: model.KindFM, Version: version, Features: n}
	fold(p, st, m, cfg.NegativeRate)
	return m, m.Validate()
}

func fit(ctx context.Context, s Samples, cfg Config, k int) (*params, *standardiser, error) {
	st, err := newStandardiser(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xda942042e4dd58b5))
	p := newParams(k, cfg.InitStd, rng)
	for j, c := range st.constant {
		// A feature that never varied (input 0, a channel without
		// impressions) never moves its factor: zero, it adds no noise when
		// serving sees the feature set.
		if c {
			clear(p.v[j])
		}
	}
	order := make([]int, s.Len())
	for i := range order {
		order[i] = i
	}
	x := make([]float64, n)
	for epoch := range cfg.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for c, i := range order {
			if c%16384 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, nil, err
				}
			}
			s.Features(i, x)
			st.apply(x)
			y := 0.0
			if s.Label(i) {
				y = 1
			}
			g := model.Sigmoid(p.logit(x)) - y
			p.step(x, g, cfg.LearningRate, cfg.L2)
		}
		if cfg.Progress != nil {
			cfg.Progress(epoch+1, cfg.Epochs)
		}
	}
	for i := range n {
		if !finite(p.w[i]) || !allFinite(p.v[i]) {
			return nil, nil, fmt.Errorf("training diverged (parameter of feature %d is not finite): lower the learning rate", i)
		}
	}
	return p, st, nil
}

// fold writes p, fitted on standardised features z = (x-μ)/σ, into m as
// parameters over raw x, and corrects the bias for dropped negatives. With
// v'_i = v_i/σ_i and S = Σ_j v'_j μ_j, expanding the FM's pairwise term over
// (x_i-μ_i)(x_j-μ_j) gives the pairwise term of v' over x, the linear terms
// -x_i⟨v'_i, S - v'_i μ_i⟩ and the constant ½(|S|² - Σ_i |v'_i|² μ_i²).
func fold(p *params, st *standardiser, m *model.Model, negRate float64) {
	m.Weights = make([]float64, n)
	m.Bias = p.bias + math.Log(negRate)
	for i := range n {
		m.Weights[i] = p.w[i] / st.std[i]
		m.Bias -= p.w[i] * st.mean[i] / st.std[i]
	}
	if p.k == 0 {
		return
	}
	m.Factors = make([][]float64, n)
	s := make([]float64, p.k)
	for i := range n {
		m.Factors[i] = make([]float64, p.k)
		for f := range p.k {
			m.Factors[i][f] = p.v[i][f] / st.std[i]
			s[f] += m.Factors[i][f] * st.mean[i]
		}
	}
	var sq float64
	for _, sf := range s {
		sq += sf * sf
	}
	m.Bias += 0.5 * sq
	for i := range n {
		var dot, norm float64
		for f, vf := range m.Factors[i] {
			dot += vf * s[f]
			norm += vf * vf
		}
		m.Weights[i] += -dot + norm*st.mean[i]
		m.Bias -= 0.5 * norm * st.mean[i] * st.mean[i]
	}
}

// Platt fits p = σ(a + b·score) to labels by Newton's method: a one-feature
// logistic regression that turns a ranking score (a click count) into a
// probability, so a baseline gets a log-loss too. negRate corrects a for dropped
// negatives, as in Config.
func Platt(scores []float64, labels []bool, negRate float64) (a, b float64) {
	for range 50 {
		// Gradient and Hessian of the mean log-loss, with a tiny ridge so a
		// separable or constant score stays finite.
		var ga, gb, haa, hab, hbb float64
		for i, s := range scores {
			p := model.Sigmoid(a + b*s)
			y := 0.0
			if labels[i] {
				y = 1
			}
			w := p * (1 - p)
			ga += p - y
			gb += (p - y) * s
			haa += w
			hab += w * s
			hbb += w * s * s
		}
		haa += 1e-6
		hbb += 1e-6
		det := haa*hbb - hab*hab
		if det <= 0 {
			break
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		a, b = a-da, b-db
		if math.Abs(da)+math.Abs(db) < 1e-10 {
			break
		}
	}
	return a + math.Log(negRate), b
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func allFinite(v []float64) bool {
	for _, f := range v {
		if !finite(f) {
			return false
		}
	}
	return true
}
