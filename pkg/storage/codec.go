package storage

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// The values in the tables are JSON (DESIGN.md §3): an id list is `[1, 2, 3]`, a
// vector `[0.1, 0.2]`, a score `0.93`. That is also what the original wrote with
// Python's str(), so tables can be shared during a migration. The original decoded
// them with eval(); these decoders accept JSON and nothing else, and report
// malformed bytes as an error.

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed value")

// EncodeIDs encodes an id list as a JSON array. Its callers write article ids,
// which are positive (CheckIDs): DecodeIDs refuses the others.
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

// DecodeIDs decodes a JSON array of article ids: positive integers.
func DecodeIDs(b []byte) ([]int64, error) {
	p := parser{b: b}
	ids := []int64{}
	err := p.array(func(tok []byte) error {
		id, err := strconv.ParseInt(string(tok), 10, 64)
		if err != nil {
			return err
		}
		if id <= 0 {
			return errNotPositive
		}
		ids = append(ids, id)
		return nil
	}, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %.40q: %v", ErrMalformed, b, err)
	}
	return ids, nil
}

var errNotPositive = errors.New("an article id is positive")

// CheckIDs reports the first id of ids that is not an article id (ids are
// positive), so a writer refuses what DecodeIDs would refuse to read.
func CheckIDs(ids []int64) error {
	for i, id := range ids {
		if id <= 0 {
			return fmt.Errorf("id %d (element %d) is not positive: an article id is", id, i)
		}
	}
	return nil
}

// ParseID reads an article id spelt as Redis members and HBase qualifiers spell
// it: the decimal digits of a positive integer, nothing else ("+5", "05" and
// " 5" are not ids, since the store would hold them apart from "5").
func ParseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, fmt.Errorf("%w: %.40q is not an article id", ErrMalformed, s)
	}
	return id, nil
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
	p := parser{b: b}
	v := []float64{}
	err := p.array(func(tok []byte) error {
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return err // out of range (1e400) included
		}
		v = append(v, f)
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %.40q: %v", ErrMalformed, b, err)
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

// parser reads one JSON array of numbers, strictly by JSON's grammar, without
// reflection: feature vectors and id lists are decoded on every ranking, and
// encoding/json's reflection was most of that cost.
type parser struct {
	b   []byte
	pos int
}

func (p *parser) space() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// array calls each with the token of every element; integers allows only
// integer tokens.
func (p *parser) array(each func(tok []byte) error, integers bool) error {
	p.space()
	if p.pos >= len(p.b) || p.b[p.pos] != '[' {
		return errors.New("not a JSON array")
	}
	p.pos++
	p.space()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return p.end()
	}
	for {
		p.space()
		tok, err := p.number(integers)
		if err != nil {
			return err
		}
		if err := each(tok); err != nil {
			return fmt.Errorf("element %q: %v", tok, err)
		}
		p.space()
		if p.pos >= len(p.b) {
			return errors.New("unterminated array")
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return p.end()
		default:
			return fmt.Errorf("unexpected %q at offset %d", p.b[p.pos], p.pos)
		}
	}
}

func (p *parser) end() error {
	p.space()
	if p.pos != len(p.b) {
		return fmt.Errorf("trailing data at offset %d", p.pos)
	}
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, the fraction and
// exponent only when !integers.
func (p *parser) number(integers bool) ([]byte, error) {
	start := p.pos
	if p.pos < len(p.b) && p.b[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(p.b) && p.b[p.pos] == '0':
		p.pos++
	case p.pos < len(p.b) && p.b[p.pos] >= '1' && p.b[p.pos] <= '9':
		p.digits()
	default:
		return nil, fmt.Errorf("expected a number at offset %d", start)
	}
	if !integers {
		if p.pos < len(p.b) && p.b[p.pos] == '.' {
			p.pos++
			if !p.digits() {
				return nil, fmt.Errorf("expected digits after the point at offset %d", p.pos)
			}
		}
		if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
			p.pos++
			if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
				p.pos++
			}
			if !p.digits() {
				return nil, fmt.Errorf("expected exponent digits at offset %d", p.pos)
			}
		}
	}
	return p.b[start:p.pos], nil
}

func (p *parser) digits() bool {
	start := p.pos
	for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
		p.pos++
	}
	return p.pos > start
}

// MergeIDs appends to list the ids it does not hold yet, in order: the merge of
// two writes of one version.
func MergeIDs(list, ids []int64) []int64 {
	seen := make(map[int64]struct{}, len(list)+len(ids))
	for _, id := range list {
		seen[id] = struct{}{}
	}
	for _, id := range ids {
		if _, dup := seen[id]; !dup {
			seen[id] = struct{}{}
			list = append(list, id)
		}
	}
	return list
}

// Highest sorts scored by score, highest first (ties by id, so every backend
// answers alike), and returns the first n.
func Highest(scored []Scored, n int) []Scored {
	slices.SortFunc(scored, func(a, b Scored) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ID, b.ID))
	})
	return scored[:min(n, len(scored))]
}
