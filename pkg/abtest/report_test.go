package abtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// twoLayers crosses simPlan's rankers with a recall experiment that leaves
// a fifth of its layer to the default.
const twoLayers = simPlan + `
  - name: recall
    salt: recall
    buckets: 10
    experiments:
      - {name: als, buckets: "0-3"}
      - {name: content, buckets: "4-7", recall: [101, 103, 104]}
`

// readers gives n readers called prefix0, prefix1, … the same counters.
func readers(prefix string, n int, c storage.UserCounts) map[string]storage.UserCounts {
	m := make(map[string]storage.UserCounts, n)
	for i := range n {
		m[fmt.Sprintf("%s%d", prefix, i)] = c
	}
	return m
}

func mustParse(t *testing.T, plan string) *Plan {
	t.Helper()
	p, err := Parse([]byte(plan))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustReport(t *testing.T, p *Plan, counters map[string]map[string]storage.UserCounts, opts ReportOptions) *Report {
	t.Helper()
	r, err := p.Report(counters, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReportFlagsSampleRatioMismatch(t *testing.T) {
	plan := mustParse(t, simPlan)
	seen := storage.UserCounts{Exposures: 10, Clicks: 1}
	tests := []struct {
		name                 string
		control, treatment   int
		wantMismatch         bool
		wantPBelow, wantPMin float64
	}{
		{"52/48 of a 50/50 split", 52_000, 48_000, true, 1e-30, 0},
		{"exactly 50/50", 50_000, 50_000, false, 1.01, 0.99},
	}
	for _, tt := range tests {
		r := mustReport(t, plan, map[string]map[string]storage.UserCounts{
			"control":   readers("c", tt.control, seen),
			"treatment": readers("t", tt.treatment, seen),
		}, ReportOptions{})
		srm := r.Layers[0].SRM
		if srm.Mismatch != tt.wantMismatch || !(float64(srm.PValue) < tt.wantPBelow) || !(float64(srm.PValue) >= tt.wantPMin) || srm.DF != 1 {
			t.Errorf("%s: SRM = %+v, want mismatch %v with p in [%g, %g) and 1 df", tt.name, srm, tt.wantMismatch, tt.wantPMin, tt.wantPBelow)
		}
	}
}

func TestReportCountsAReaderInEveryLayerTheyAreIn(t *testing.T) {
	plan := mustParse(t, twoLayers)
	r := mustReport(t, plan, map[string]map[string]storage.UserCounts{
		"control|als":    {"both": {Exposures: 10, Clicks: 2}},
		"treatment":      {"ranker-only": {Exposures: 4, Clicks: 1}},
		"content":        {"recall-only": {Exposures: 6, Clicks: 0}},
		"base":           {"neither": {Exposures: 100, Clicks: 50}},
		"control|nobody": {"stale": {Exposures: 1, Clicks: 1}},
	}, ReportOptions{})
	type row struct {
		users, exposures, clicks int64
	}
	want := map[string]map[string]row{
		"ranker": {"control": {1, 10, 2}, "treatment": {1, 4, 1}},
		"recall": {"als": {1, 10, 2}, "content": {1, 6, 0}},
	}
	if len(r.Layers) != 2 {
		t.Fatalf("got %d layers, want 2", len(r.Layers))
	}
	for _, l := range r.Layers {
		for _, v := range l.Variants {
			if got := (row{v.Users, v.Exposures, v.Clicks}); got != want[l.Name][v.Name] {
				t.Errorf("layer %s variant %s: users, exposures, clicks = %v, want %v", l.Name, v.Name, got, want[l.Name][v.Name])
			}
		}
	}
	// Counters under a name this plan cannot produce are reported, not
	// silently dropped or misattributed.
	if !strings.Contains(strings.Join(r.Warnings, "\n"), `strategy "control|nobody" (1 users) is no combination`) {
		t.Errorf("warnings = %q, want one about control|nobody", r.Warnings)
	}
	// The recall layer's experiments own 4 + 4 of its 10 buckets: the split
	// among the readers in it is 50/50.
	if s := r.Layers[1].Variants[0].Share; s != 0.5 {
		t.Errorf("recall als share = %v, want 0.5", s)
	}
}

func TestReportMergesAReaderUnderTwoNamesOfOneVariant(t *testing.T) {
	plan := mustParse(t, twoLayers)
	r := mustReport(t, plan, map[string]map[string]storage.UserCounts{
		// u moved from als to content when the recall layer changed: one
		// reader of control, but one of als and one of content.
		"control|als":     {"u": {Exposures: 3, Clicks: 1}},
		"control|content": {"u": {Exposures: 5, Clicks: 1}},
	}, ReportOptions{})
	if c := r.Layers[0].Variants[0]; c.Users != 1 || c.Exposures != 8 || c.Clicks != 2 {
		t.Errorf("control = %d users, %d exposures, %d clicks; want 1, 8, 2", c.Users, c.Exposures, c.Clicks)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "layer recall: 1 users appear in more than one of its variants") {
		t.Errorf("warnings = %q, want one about the reader in als and content", r.Warnings)
	}
}

func TestReportOriginalPlanExpectsItsFourteenToTwoSplit(t *testing.T) {
	plan := mustParse(t, Original)
	seen := storage.UserCounts{Exposures: 10, Clicks: 1}
	r := mustReport(t, plan, map[string]map[string]storage.UserCounts{
		"Algo-1": readers("a", 8750, seen),
		"Algo-2": readers("b", 1250, seen),
	}, ReportOptions{})
	l := r.Layers[0]
	if l.Variants[0].Share != 0.875 || l.Variants[1].Share != 0.125 {
		t.Errorf("shares = %v, %v; want 0.875, 0.125", l.Variants[0].Share, l.Variants[1].Share)
	}
	if l.Control != "Algo-1" || l.SRM.Mismatch || l.SRM.ChiSquare != 0 {
		t.Errorf("control %s, SRM %+v; want Algo-1 and an exact match", l.Control, l.SRM)
	}
	// The default is Algo-1 too, but the layer owns every bucket, so no
	// reader can be outside it: nothing is ambiguous.
	if len(r.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", r.Warnings)
	}
}

func TestReportLiftAgainstTheNamedControl(t *testing.T) {
	plan := mustParse(t, Original)
	r := mustReport(t, plan, map[string]map[string]storage.UserCounts{
		"Algo-1": readers("a", 1000, storage.UserCounts{Exposures: 10, Clicks: 1}),
		"Algo-2": readers("b", 1000, storage.UserCounts{Exposures: 10, Clicks: 2}),
	}, ReportOptions{Control: "Algo-2", MDE: 0.1})
	l := r.Layers[0]
	if l.Control != "Algo-2" || l.Variants[1].Lift != nil {
		t.Fatalf("control = %s, its lift %v; want Algo-2 and none", l.Control, l.Variants[1].Lift)
	}
	// Every reader has the same CTR, so the per-reader variance is 0 (up to
	// rounding): the interval is the point and no more readers are needed.
	a := l.Variants[0]
	if a.Lift == nil || math.Abs(float64(a.Lift.Value)+0.5) > 1e-12 || a.Lift.High-a.Lift.Low > 1e-6 || a.MoreUsers != 0 {
		t.Errorf("Algo-1 lift %+v, more users %v; want exactly -50%% and 0", a.Lift, a.MoreUsers)
	}
	if _, err := plan.Report(nil, ReportOptions{Control: "Algo-3"}); err == nil {
		t.Error("Report with an unknown control succeeded, want an error")
	}
	if _, err := plan.Report(nil, ReportOptions{MDE: -0.05}); err == nil {
		t.Error("Report with a negative MDE succeeded, want an error")
	}
}

// Seed 000's example: a 10% lift on a 5% baseline needs 31,231 users per
// variant. Readers with one exposure each make the per-reader variance the
// binomial one, so the readout must agree with the seed's formula there, up
// to its use of the two rates' mean where the readout uses the observed arms.
func TestReportSampleSizeFollowsSeedFormula(t *testing.T) {
	plan := mustParse(t, simPlan)
	counters := map[string]map[string]storage.UserCounts{
		"control":   readers("c0", 9500, storage.UserCounts{Exposures: 1}),
		"treatment": readers("t0", 9450, storage.UserCounts{Exposures: 1}),
	}
	for i := range 500 {
		counters["control"][fmt.Sprintf("c1%d", i)] = storage.UserCounts{Exposures: 1, Clicks: 1}
	}
	for i := range 550 {
		counters["treatment"][fmt.Sprintf("t1%d", i)] = storage.UserCounts{Exposures: 1, Clicks: 1}
	}
	v := mustReport(t, plan, counters, ReportOptions{MDE: 0.10}).Layers[0].Variants[1]
	if got := float64(v.UsersPerArm); math.Abs(got-31231)/31231 > 0.01 {
		t.Errorf("users per arm = %v, want within 1%% of seed 000's 31231", got)
	}
	if got, want := float64(v.MoreUsers), float64(v.UsersPerArm)-10000; got != want {
		t.Errorf("more users = %v, want %v (each arm has 10000)", got, want)
	}
}

func TestReportWithoutDataHasNoNumbersAndEncodes(t *testing.T) {
	plan := mustParse(t, twoLayers)
	tests := map[string]map[string]map[string]storage.UserCounts{
		"no counters":    nil,
		"no exposures":   {"control|als": readers("u", 3, storage.UserCounts{}), "treatment|content": readers("v", 3, storage.UserCounts{})},
		"empty variant":  {"control|als": readers("u", 50, storage.UserCounts{Exposures: 4, Clicks: 1})},
		"one reader":     {"control": {"u": {Exposures: 4, Clicks: 1}}, "treatment": {"v": {Exposures: 4}}},
		"clicks, unseen": {"control": readers("u", 5, storage.UserCounts{Clicks: 1}), "treatment": readers("v", 5, storage.UserCounts{Exposures: 5, Clicks: 1})},
	}
	for name, counters := range tests {
		r := mustReport(t, plan, counters, ReportOptions{})
		b, err := json.Marshal(r)
		if err != nil {
			t.Errorf("%s: marshal: %v", name, err)
			continue
		}
		if !bytes.Contains(b, []byte(":null")) {
			t.Errorf("%s: JSON has no null statistic: %s", name, b)
		}
		var text strings.Builder
		if err := r.WriteText(&text); err != nil {
			t.Errorf("%s: WriteText: %v", name, err)
		}
		if strings.Contains(text.String(), "NaN") || strings.Contains(text.String(), "Inf") {
			t.Errorf("%s: text shows NaN or Inf:\n%s", name, text.String())
		}
	}
	// A variant with no readers: its CTR is null, the other's is a number.
	r := mustReport(t, plan, tests["empty variant"], ReportOptions{})
	var decoded struct {
		Layers []struct {
			Variants []struct {
				Name  string
				Users int64
				CTR   struct{ Value *float64 }
				Lift  *struct{ Value *float64 }
			}
		}
	}
	b, _ := json.Marshal(r)
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	control, treatment := decoded.Layers[0].Variants[0], decoded.Layers[0].Variants[1]
	if control.CTR.Value == nil || *control.CTR.Value != 0.25 || treatment.Users != 0 || treatment.CTR.Value != nil || treatment.Lift == nil || treatment.Lift.Value != nil {
		t.Errorf("JSON variants = %+v, %+v; want control CTR 0.25, treatment 0 users with null CTR and lift", control, treatment)
	}
}

func TestReportJSONFieldNames(t *testing.T) {
	r := mustReport(t, mustParse(t, Original), map[string]map[string]storage.UserCounts{
		"Algo-1": readers("a", 10, storage.UserCounts{Exposures: 10, Clicks: 1}),
	}, ReportOptions{})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"mde":0.05`, `"layers":[{"name":"original","control":"Algo-1","users":10,`, `"ctr":{"value":0.1,`, `"lift":null`, `"p_value":`, `"users_per_arm":`, `"more_users":`, `"srm":{"chi_square":`, `"mismatch":false`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("JSON lacks %s:\n%s", key, b)
		}
	}
}

func TestReportTextIsATablePerLayer(t *testing.T) {
	plan := mustParse(t, Original)
	r := mustReport(t, plan, map[string]map[string]storage.UserCounts{
		"Algo-1": readers("a", 5200, storage.UserCounts{Exposures: 10, Clicks: 1}),
		"Algo-2": readers("b", 4800, storage.UserCounts{Exposures: 10, Clicks: 1}),
	}, ReportOptions{})
	var out strings.Builder
	if err := r.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"layer original: 10000 users, control Algo-1",
		"variant  split  users",
		"Algo-1   87.5%  5200 (52.0%)  52000      5200    10.000%  [10.000%, 10.000%]  control",
		"Algo-2   12.5%  4800 (48.0%)  48000      4800    10.000%  [10.000%, 10.000%]  +0.0%    [+0.0%, +0.0%]  1.0000",
		"sample ratio: MISMATCH",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportWarnsOfAmbiguousNames(t *testing.T) {
	plan := mustParse(t, `
default: base
strategies:
  base: {recall: [100], sort: 200}
layers:
  - {name: one, buckets: 10, experiments: [{name: base, buckets: "0-4"}, {name: x, buckets: "5-6", sort: 201}]}
  - {name: two, salt: two, buckets: 10, experiments: [{name: x, buckets: "0-9", sort: 201}]}
`)
	r := mustReport(t, plan, nil, ReportOptions{})
	got := strings.Join(r.Warnings, "\n")
	for _, want := range []string{`layer one: the default "base" is also one of its experiments`, `experiment "x" is in layers one and two`} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings = %q, want one saying %q", got, want)
		}
	}
}
