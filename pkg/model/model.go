// Package model is the CTR model file format shared by the trainer (`reco admin
// build`) and the sort service, the 121 stored feature values of DESIGN.md §5,
// the model input built from them (Features), and prediction.
//
// The input is the 121 stored values in their order, except the channel id: a
// channel is a category, not a quantity — channel 12 is not "more" than
// channel 3 — so it enters one-hot, one input per channel id after the stored
// values, and each channel gets a weight of its own (and, in the FM, a factor
// of its own that meets the user's taste and the article's topic). Input 0,
// where the stored values hold the id, stays 0, so every other input keeps its
// stored-layout index.
//
// A model file is JSON:
//
//	{"id": 200, "kind": "logistic", "version": "2026-11-21T10:00:00Z",
//	 "features": 146, "bias": -1.2, "weights": [146 numbers]}
//	{"id": 201, "kind": "fm", "version": "…", "features": 146, "bias": …,
//	 "weights": [146], "factors": [146 rows of k numbers]}
//
// "logistic" scores σ(b + w·x); "fm", a factorization machine, adds the pairwise
// interactions Σ_{i<j} ⟨v_i, v_j⟩ x_i x_j, computed in O(k·n).
package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// fileSuffix ends every model file's name: {id}.json, as `reco admin build`
// writes them and the sort service loads them.
const fileSuffix = ".json"

// Path is the file of model id in dir.
func Path(dir string, id int32) string {
	return filepath.Join(dir, strconv.Itoa(int(id))+fileSuffix)
}

// FileID is the model id a file name stands for, and whether it names a model
// file at all.
func FileID(name string) (int32, bool) {
	base, ok := strings.CutSuffix(name, fileSuffix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(base, 10, 32)
	// Only the name Path gives: "0200.json" would load as 200 from another file.
	return int32(id), err == nil && id > 0 && strconv.Itoa(int(id)) == base
}

// Kinds of model.
const (
	KindLogistic = "logistic"
	KindFM       = "fm"
)

// Feature layout (DESIGN.md §5): the stored values are [channel_id] +
// article_vector(100) + user_weights(10) + article_keyword_weights(10); a
// model's input is those, with the channel id one-hot after them.
const (
	ArticleVectorLen  = 100
	KeywordWeightsLen = 10
	UserWeightsLen    = 10
	// ArticleFeatureLen is the length of a ctr_feature_article value: channel id,
	// 10 keyword weights, 100-d article vector.
	ArticleFeatureLen = 1 + KeywordWeightsLen + ArticleVectorLen
	// StoredFeatures is the number of stored values a model's input is built
	// from: the channel id, the article vector, the user's weights for the
	// channel and the article's keyword weights.
	StoredFeatures = 1 + ArticleVectorLen + UserWeightsLen + KeywordWeightsLen
	// ChannelInputs is the index of channel 0's one-hot input; channel c's is
	// ChannelInputs+c.
	ChannelInputs = StoredFeatures
	// NumFeatures is the length of a model's input.
	NumFeatures = StoredFeatures + int(feed.NumChannels)
)

// Model is a loaded CTR model.
type Model struct {
	ID       int32       `json:"id"`
	Kind     string      `json:"kind"`
	Version  string      `json:"version"`
	Features int         `json:"features"`
	Bias     float64     `json:"bias"`
	Weights  []float64   `json:"weights"`
	Factors  [][]float64 `json:"factors,omitempty"`
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid model")

// Load reads and validates the model file at path.
func Load(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}

// Decode parses and validates a model file's bytes. Unknown fields are refused so
// a file from a newer trainer fails loudly rather than scoring with half of
// itself.
func Decode(b []byte) (*Model, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Model
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the model", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Encode returns the model file's bytes.
func (m *Model) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// Validate checks the shapes and that every parameter is finite.
func (m *Model) Validate() error {
	if m.ID <= 0 {
		return fmt.Errorf("%w: id must be positive, got %d", ErrInvalid, m.ID)
	}
	if m.Features == StoredFeatures {
		return fmt.Errorf("%w: %d features: a model that reads the channel id as a number, from before it became a category (%d features); build the models again (reco admin build)", ErrInvalid, m.Features, NumFeatures)
	}
	if m.Features != NumFeatures {
		return fmt.Errorf("%w: features must be %d, got %d", ErrInvalid, NumFeatures, m.Features)
	}
	if len(m.Weights) != m.Features {
		return fmt.Errorf("%w: %d weights for %d features", ErrInvalid, len(m.Weights), m.Features)
	}
	if !finite(m.Bias) || !allFinite(m.Weights) {
		return fmt.Errorf("%w: bias and weights must be finite", ErrInvalid)
	}
	switch m.Kind {
	case KindLogistic:
		if len(m.Factors) != 0 {
			return fmt.Errorf("%w: a logistic model has no factors", ErrInvalid)
		}
	case KindFM:
		if len(m.Factors) != m.Features {
			return fmt.Errorf("%w: %d factor rows for %d features", ErrInvalid, len(m.Factors), m.Features)
		}
		k := len(m.Factors[0])
		if k == 0 {
			return fmt.Errorf("%w: factor rows are empty", ErrInvalid)
		}
		for i, row := range m.Factors {
			if len(row) != k || !allFinite(row) {
				return fmt.Errorf("%w: factor row %d must hold %d finite numbers", ErrInvalid, i, k)
			}
		}
	default:
		return fmt.Errorf("%w: kind must be %q or %q, got %q", ErrInvalid, KindLogistic, KindFM, m.Kind)
	}
	return nil
}

// Predict returns the click probability of feature vector x (len NumFeatures).
func (m *Model) Predict(x []float64) float64 {
	z := m.Bias
	for i, w := range m.Weights {
		z += w * x[i]
	}
	if m.Kind == KindFM {
		k := len(m.Factors[0])
		for f := range k {
			var sum, sumSq float64
			for i, row := range m.Factors {
				v := row[f] * x[i]
				sum += v
				sumSq += v * v
			}
			z += 0.5 * (sum*sum - sumSq)
		}
	}
	return Sigmoid(z)
}

// Sigmoid is the logistic function, stable for large |z|.
func Sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// Features builds the model input into dst (reused when large enough) from an
// article's stored feature value (ArticleFeatureLen floats: channel id, keyword
// weights, vector) and the user's channel weights: the one construction the
// trainer and the sort service share, so a model scores online exactly as it
// was trained. The channel, which the caller knows (the stored id, or the
// feed's channel), sets its one-hot input; a channel outside
// 0..feed.NumChannels-1 sets none. A missing article (nil) or user (nil)
// contributes zeros.
func Features(dst []float64, channel int32, article, user []float64) []float64 {
	if cap(dst) < NumFeatures {
		dst = make([]float64, NumFeatures)
	}
	x := dst[:NumFeatures]
	clear(x)
	if feed.ValidChannel(channel) {
		x[ChannelInputs+int(channel)] = 1
	}
	if len(article) == ArticleFeatureLen {
		copy(x[1:1+ArticleVectorLen], article[1+KeywordWeightsLen:])
		copy(x[1+ArticleVectorLen+UserWeightsLen:StoredFeatures], article[1:1+KeywordWeightsLen])
	}
	if len(user) == UserWeightsLen {
		copy(x[1+ArticleVectorLen:1+ArticleVectorLen+UserWeightsLen], user)
	}
	return x
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
