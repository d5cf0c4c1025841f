package storage

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestDecodeIDs(t *testing.T) {
	tests := []struct {
		in      string
		want    []int64
		wantErr bool
	}{
		{in: "[1, 2, 3]", want: []int64{1, 2, 3}},
		{in: "[]", want: []int64{}},
		{in: " [9223372036854775807] ", want: []int64{math.MaxInt64}},
		{in: "[1,2,3]", want: []int64{1, 2, 3}},
		{in: "", wantErr: true},
		{in: "null", wantErr: true},
		{in: "[1, 2", wantErr: true},
		{in: "[1.5]", wantErr: true},
		{in: `["1"]`, wantErr: true},
		{in: "[1] [2]", wantErr: true},
		{in: "__import__('os').system('id')", wantErr: true},
		{in: "{1: 2}", wantErr: true},
		{in: "[9223372036854775808]", wantErr: true},
		{in: "[1, 0]", wantErr: true},
		{in: "[-3]", wantErr: true},
		{in: `[1, "x"]`, wantErr: true},
		{in: "{", wantErr: true},
	}
	for _, tt := range tests {
		got, err := DecodeIDs([]byte(tt.in))
		if tt.wantErr {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("DecodeIDs(%q) err = %v, want ErrMalformed", tt.in, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("DecodeIDs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestIDsRoundTripMatchesPythonStr(t *testing.T) {
	// Python's str([1, 2, 3]) is "[1, 2, 3]": the original's writers and ours agree.
	if got := string(EncodeIDs([]int64{1, 2, 3})); got != "[1, 2, 3]" {
		t.Errorf("EncodeIDs = %q, want %q", got, "[1, 2, 3]")
	}
	ids := []int64{5, 1, 1 << 40}
	got, err := DecodeIDs(EncodeIDs(ids))
	if err != nil || !slices.Equal(got, ids) {
		t.Errorf("round trip = %v, %v; want %v", got, err, ids)
	}
}

// An article id is positive: writers check with CheckIDs what readers refuse.
func TestCheckIDsAndParseID(t *testing.T) {
	if err := CheckIDs([]int64{1, 2}); err != nil {
		t.Errorf("CheckIDs(1, 2) = %v", err)
	}
	for _, ids := range [][]int64{{0}, {1, -3}} {
		if err := CheckIDs(ids); err == nil {
			t.Errorf("CheckIDs(%v) = nil, want an error", ids)
		}
	}
	if id, err := ParseID("42"); err != nil || id != 42 {
		t.Errorf("ParseID(42) = %d, %v", id, err)
	}
	for _, s := range []string{"", "x", "0", "-3", "+5", "05", " 5", "5.0", "9223372036854775808"} {
		if _, err := ParseID(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseID(%q) err = %v, want ErrMalformed", s, err)
		}
	}
}

func TestFloats(t *testing.T) {
	v := []float64{0.1, -2.5e-05, 3}
	b, err := EncodeFloats(v)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFloats(b)
	if err != nil || !slices.Equal(got, v) {
		t.Errorf("round trip = %v, %v; want %v", got, err, v)
	}
	if _, err := EncodeFloats([]float64{math.NaN()}); err == nil {
		t.Error("EncodeFloats(NaN) succeeded, want error")
	}
	for _, in := range []string{"[nan]", "[inf]", "[0.1,]", "0.1", "[[0.1]]"} {
		if _, err := DecodeFloats([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeFloats(%q) err = %v, want ErrMalformed", in, err)
		}
	}
}

func TestScore(t *testing.T) {
	b, err := EncodeScore(0.93)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeScore(b); err != nil || got != 0.93 {
		t.Errorf("DecodeScore(%q) = %v, %v", b, got, err)
	}
	for _, in := range []string{"", "nan", "inf", "0.9x", "[0.9]"} {
		if _, err := DecodeScore([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeScore(%q) err = %v, want ErrMalformed", in, err)
		}
	}
}

// FuzzDecodeMatchesEncodingJSON checks the hand-written decoders against
// encoding/json: the same bytes are accepted or refused by both, with the same
// values, except that an id list holding an id <= 0 is refused (an article id is
// positive) although it is valid JSON.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{"[1, 2, 3]", "[]", " [ ] ", "[0.1, -2e-5, 3E+2]", "[01]", "[-0]", "[1e400]", "[1,]", "[1.]", "[.5]", "[1] x", "null", "[\"1\"]", "[9223372036854775808]", "[1.0]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := DecodeIDs(b)
		var jids []int64
		jerr := json.Unmarshal(b, &jids)
		if jerr == nil && jids == nil {
			jerr = errors.New("null") // we refuse null; so does the contract
		}
		if jerr == nil && CheckIDs(jids) != nil {
			jerr = errors.New("not positive") // valid JSON, but not article ids
		}
		if (err == nil) != (jerr == nil) || (err == nil && !slices.Equal(ids, jids)) {
			t.Fatalf("DecodeIDs(%q) = %v, %v; encoding/json: %v, %v", b, ids, err, jids, jerr)
		}
		v, err := DecodeFloats(b)
		var jv []float64
		jerr = json.Unmarshal(b, &jv)
		if jerr == nil && jv == nil {
			jerr = errors.New("null")
		}
		if (err == nil) != (jerr == nil) || (err == nil && !slices.Equal(v, jv)) {
			t.Fatalf("DecodeFloats(%q) = %v, %v; encoding/json: %v, %v", b, v, err, jv, jerr)
		}
	})
}

func BenchmarkDecodeFloats(b *testing.B) {
	v := make([]float64, 111)
	for i := range v {
		v[i] = float64(i) * 0.0123456789
	}
	enc, _ := EncodeFloats(v)
	for b.Loop() {
		if _, err := DecodeFloats(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: they may fail, never panic, and
// whatever they accept must survive a round trip.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"[1, 2, 3]", "[]", "[0.1, 0.2]", "0.93", "[", "null", "[1e400]", "[-0]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ids, err := DecodeIDs(b); err == nil {
			back, err := DecodeIDs(EncodeIDs(ids))
			if err != nil || !slices.Equal(back, ids) {
				t.Fatalf("ids %v did not round-trip: %v, %v", ids, back, err)
			}
		}
		if v, err := DecodeFloats(b); err == nil {
			enc, err := EncodeFloats(v)
			if err != nil {
				t.Fatalf("decoded %v cannot be encoded: %v", v, err)
			}
			if back, err := DecodeFloats(enc); err != nil || !slices.Equal(back, v) {
				t.Fatalf("vector %v did not round-trip: %v, %v", v, back, err)
			}
		}
		if s, err := DecodeScore(b); err == nil {
			enc, err := EncodeScore(s)
			if err != nil {
				t.Fatalf("decoded %v cannot be encoded: %v", s, err)
			}
			if back, err := DecodeScore(enc); err != nil || back != s {
				t.Fatalf("score %v did not round-trip: %v, %v", s, back, err)
			}
		}
	})
}
