package model

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

func TestFeaturesLayout(t *testing.T) {
	article := make([]float64, ArticleFeatureLen)
	article[0] = 7 // stored channel id: the layout takes the caller's
	for i := range KeywordWeightsLen {
		article[1+i] = 1000 + float64(i) // keyword weights
	}
	for i := range ArticleVectorLen {
		article[1+KeywordWeightsLen+i] = float64(i) // vector
	}
	user := []float64{-1, -2, -3, -4, -5, -6, -7, -8, -9, -10}
	x := Features(nil, 3, article, user)
	if len(x) != 121+25 {
		t.Fatalf("len = %d, want 121 stored values + 25 channels", len(x))
	}
	want := make([]float64, len(x))
	for i := range ArticleVectorLen {
		want[1+i] = float64(i)
	}
	copy(want[101:111], user)
	for i := range KeywordWeightsLen {
		want[111+i] = 1000 + float64(i)
	}
	want[121+3] = 1 // channel 3, one-hot; input 0 (the stored id's place) stays 0
	for i := range x {
		if x[i] != want[i] {
			t.Errorf("x[%d] = %v, want %v", i, x[i], want[i])
		}
	}
	x = Features(x, 4, nil, nil)
	for i, v := range x {
		if v != 0 && i != 121+4 {
			t.Errorf("missing features must be zeros: x[%d] = %v", i, v)
		}
	}
	if x[121+4] != 1 {
		t.Errorf("channel 4's input = %v, want 1", x[121+4])
	}
	for _, ch := range []int32{-1, 25, 99} {
		for i, v := range Features(x, ch, nil, nil) {
			if v != 0 {
				t.Errorf("channel %d (not a channel) set x[%d] = %v", ch, i, v)
			}
		}
	}
}

// TestChannelIsACategory: a model gives each channel a score of its own,
// whatever the channel ids' order — a weight on a numeric id could only make
// the score rise or fall with the id.
func TestChannelIsACategory(t *testing.T) {
	m := &Model{ID: 200, Kind: KindLogistic, Features: NumFeatures, Weights: make([]float64, NumFeatures)}
	logit := map[int32]float64{2: 1.5, 11: -2, 20: 1.5, 5: 0.25}
	for ch, w := range logit {
		m.Weights[ChannelInputs+int(ch)] = w
	}
	article := make([]float64, ArticleFeatureLen)
	for ch := range feed.NumChannels {
		if got, want := m.Predict(Features(nil, ch, article, nil)), Sigmoid(logit[ch]); got != want {
			t.Errorf("channel %d scores %v, want σ(%v) = %v", ch, got, logit[ch], want)
		}
	}
}

func TestPredict(t *testing.T) {
	lr := &Model{ID: 200, Kind: KindLogistic, Features: NumFeatures, Weights: make([]float64, NumFeatures)}
	lr.Weights[0] = 1
	x := make([]float64, NumFeatures)
	x[0] = 2
	if got, want := lr.Predict(x), Sigmoid(2); got != want {
		t.Errorf("logistic = %v, want %v", got, want)
	}
	fm := &Model{ID: 201, Kind: KindFM, Features: NumFeatures, Weights: make([]float64, NumFeatures), Factors: make([][]float64, NumFeatures)}
	for i := range fm.Factors {
		fm.Factors[i] = []float64{0, 0}
	}
	fm.Factors[0] = []float64{1, 2}
	fm.Factors[1] = []float64{3, 0.5}
	x[1] = 1
	// Only the (0,1) pair interacts: ⟨v0, v1⟩ x0 x1 = (3 + 1) * 2 * 1 = 8.
	if got, want := fm.Predict(x), Sigmoid(8); math.Abs(got-want) > 1e-12 {
		t.Errorf("fm = %v, want %v", got, want)
	}
	if s := Sigmoid(-1000); s != 0 || math.IsNaN(s) {
		t.Errorf("Sigmoid(-1000) = %v", s)
	}
}

func TestDecodeRefusesBadFiles(t *testing.T) {
	good := &Model{ID: 200, Kind: KindLogistic, Version: "v1", Features: NumFeatures, Weights: make([]float64, NumFeatures)}
	b, err := good.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Decode(b); err != nil || m.Version != "v1" {
		t.Fatalf("round trip: %v, %v", m, err)
	}
	nf := strconv.Itoa(NumFeatures)
	for name, in := range map[string]string{
		"not json":      "weights",
		"unknown field": `{"id":200,"kind":"logistic","features":` + nf + `,"weights":[],"extra":1}`,
		"short weights": `{"id":200,"kind":"logistic","features":` + nf + `,"weights":[1,2]}`,
		"bad kind":      `{"id":200,"kind":"tree","features":` + nf + `}`,
		"no id":         `{"kind":"logistic","features":` + nf + `}`,
		"fm no factors": `{"id":201,"kind":"fm","features":` + nf + `,"weights":[` + zeros(NumFeatures) + `]}`,
		"trailing":      string(b) + " {}",
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// TestDecodeRefusesNumericChannelModels: a model file of the layout that
// read the channel id as a number (121 inputs) is refused with what to do.
func TestDecodeRefusesNumericChannelModels(t *testing.T) {
	old := `{"id":200,"kind":"logistic","version":"v0","features":121,"bias":0,"weights":[` + zeros(121) + `]}`
	_, err := Decode([]byte(old))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "reco admin build") {
		t.Errorf("err = %v, want ErrInvalid saying to run reco admin build", err)
	}
}

func zeros(n int) string {
	s := "0"
	for range n - 1 {
		s += ",0"
	}
	return s
}
