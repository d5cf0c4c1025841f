package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// The values in the tables are JSON (DESIGN.md §3): an id list is `[1, 2, 3]`, a
// vector `[0.1, 0.2]`, a score `0.93`. That is also what the original wrote with
// Python's str(), so tables can be shared during a migration. The original decoded
// them with eval(); these decoders accept JSON and nothing else, and report
// malformed bytes as an error.

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed value")

// EncodeIDs encodes an id list as a JSON array.
func EncodeIDs(ids []int64) []byte {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, ']')
}

// DecodeIDs decodes a JSON array of integers.
func DecodeIDs(b []byte) ([]int64, error) {
	var ids []int64
	if err := decodeArray(b, &ids); err != nil {
		return nil, err
	}
	return ids, nil
}

// EncodeFloats encodes a vector as a JSON array. NaN and ±Inf have no JSON form
// and are refused.
func EncodeFloats(v []float64) ([]byte, error) {
	b := make([]byte, 0, 2+len(v)*10)
	b = append(b, '[')
	for i, f := range v {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("encode vector: element %d is %v, which JSON cannot hold", i, f)
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
	}
	return append(b, ']'), nil
}

// DecodeFloats decodes a JSON array of numbers.
func DecodeFloats(b []byte) ([]float64, error) {
	var v []float64
	if err := decodeArray(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// EncodeScore encodes a score as a JSON number.
func EncodeScore(f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("encode score: %v has no JSON form", f)
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// DecodeScore decodes a JSON number.
func DecodeScore(b []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(b)), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: score %.40q is not a finite JSON number", ErrMalformed, b)
	}
	return f, nil
}

// decodeArray decodes exactly one JSON array into dst, rejecting null, other JSON
// types and trailing bytes.
func decodeArray(b []byte, dst any) error {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || t[0] != '[' {
		return fmt.Errorf("%w: %.40q is not a JSON array", ErrMalformed, b)
	}
	if err := json.Unmarshal(t, dst); err != nil {
		return fmt.Errorf("%w: %.40q: %v", ErrMalformed, b, err)
	}
	return nil
}
