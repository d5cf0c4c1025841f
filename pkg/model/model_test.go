package model

import (
	"errors"
	"math"
	"testing"
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
	if len(x) != 121 {
		t.Fatalf("len = %d, want 121", len(x))
	}
	checks := []struct {
		i    int
		want float64
	}{{0, 3}, {1, 0}, {100, 99}, {101, -1}, {110, -10}, {111, 1000}, {120, 1009}}
	for _, c := range checks {
		if x[c.i] != c.want {
			t.Errorf("x[%d] = %v, want %v", c.i, x[c.i], c.want)
		}
	}
	if x := Features(x, 4, nil, nil); x[0] != 4 || x[50] != 0 || x[105] != 0 {
		t.Errorf("missing features must be zeros: %v", x[:6])
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
	for name, in := range map[string]string{
		"not json":      "weights",
		"unknown field": `{"id":200,"kind":"logistic","features":121,"weights":[],"extra":1}`,
		"short weights": `{"id":200,"kind":"logistic","features":121,"weights":[1,2]}`,
		"bad kind":      `{"id":200,"kind":"tree","features":121}`,
		"no id":         `{"kind":"logistic","features":121}`,
		"fm no factors": `{"id":201,"kind":"fm","features":121,"weights":[` + zeros(121) + `]}`,
		"trailing":      string(b) + " {}",
	} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func zeros(n int) string {
	s := "0"
	for range n - 1 {
		s += ",0"
	}
	return s
}
