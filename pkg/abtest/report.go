package abtest

// The A/B readout of DESIGN.md §9: per layer and variant, users, exposures,
// clicks and CTR with its interval, the lift against the control with its
// interval and p-value, a sample-ratio-mismatch test and the users still
// needed for a minimum detectable effect.
//
// The unit of randomisation is the reader, so the unit of analysis is too.
// CTR = Σclicks/Σexposures is a ratio of two per-reader sums whose terms are
// correlated (a reader who sees more also clicks more), so its variance is
// not the binomial p(1−p)/Σexposures, which pretends every exposure is an
// independent draw and makes intervals too narrow. It comes from the delta
// method for a ratio metric (Deng, Knoblich & Lu, "Applying the Delta Method
// in Metric Analytics", KDD 2018, on ratio metrics; Kohavi, Tang & Xu,
// "Trustworthy Online Controlled Experiments", 2020, ch. 18):
//
//	Var(R) ≈ (σx² − 2R·σxy + R²·σy²) / (n·ȳ²) = Σ(xᵢ − R·yᵢ)² / ((n−1)·n·ȳ²)
//
// with xᵢ, yᵢ a reader's clicks and exposures, n the readers and ȳ their mean
// exposures; the second form holds because the residuals xᵢ − R·yᵢ sum to 0.

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

const (
	// DefaultMDE is the relative minimum detectable effect the readout sizes
	// the experiment for when ReportOptions.MDE is 0: a 5% change of CTR.
	DefaultMDE = 0.05
	// Alpha is the two-sided significance level of every interval and test.
	Alpha = 0.05
	// Power is the chance the sample size gives of detecting the MDE.
	Power = 0.8
	// SRMAlpha is where a sample-ratio mismatch is flagged (DESIGN §9): this
	// strict, because the test runs on every readout and a false alarm
	// discards a sound experiment.
	SRMAlpha = 0.001
)

// ReportOptions choose what Report compares.
type ReportOptions struct {
	// Control is the experiment every other one is compared with, in the
	// layer that has it; other layers (and every layer, if empty) compare
	// with their first experiment.
	Control string
	// MDE is the relative effect to size the experiment for (0.05: a 5%
	// change of CTR); 0 means DefaultMDE.
	MDE float64
}

// Report is the readout of a plan's experiments. It marshals to JSON as the
// HTTP readout serves it; undefined statistics are null.
type Report struct {
	MDE      float64       `json:"mde"`
	Alpha    float64       `json:"alpha"`
	Power    float64       `json:"power"`
	Layers   []LayerReport `json:"layers"`
	Warnings []string      `json:"warnings"`
}

// LayerReport is one layer: its experiments compared with its control.
type LayerReport struct {
	Name    string `json:"name"`
	Control string `json:"control"`
	// Users is the sum of the variants' users (a reader the warnings say is
	// in two variants counts in both).
	Users    int64           `json:"users"`
	Variants []VariantReport `json:"variants"`
	SRM      SRM             `json:"srm"`
}

// VariantReport is one experiment of a layer.
type VariantReport struct {
	Name string `json:"name"`
	// Buckets are the layer buckets it owns; Share is the fraction of the
	// layer's experiment traffic that makes (the configured split).
	Buckets   int      `json:"buckets"`
	Share     Float    `json:"share"`
	Users     int64    `json:"users"`
	Exposures int64    `json:"exposures"`
	Clicks    int64    `json:"clicks"`
	CTR       Estimate `json:"ctr"`
	// Lift is the relative change of CTR against the control (0.1: +10%),
	// PValue its two-sided p-value; both null for the control itself.
	Lift   *Estimate `json:"lift"`
	PValue Float     `json:"p_value"`
	// UsersPerArm is how many readers each of this variant and the control
	// need to detect the MDE; MoreUsers how many the smaller of the two still
	// lacks (0 once both have enough). Null for the control.
	UsersPerArm Float `json:"users_per_arm"`
	MoreUsers   Float `json:"more_users"`
}

// Estimate is a value with its confidence interval at level 1 − Alpha (95%).
type Estimate struct {
	Value Float `json:"value"`
	Low   Float `json:"low"`
	High  Float `json:"high"`
}

// SRM is the χ² test of a layer's users per variant against the configured
// split. A mismatch means assignment or logging lost users unevenly, which
// biases the comparison whatever its p-value says (Kohavi, Tang & Xu 2020,
// ch. 21).
type SRM struct {
	ChiSquare Float `json:"chi_square"`
	DF        int   `json:"df"`
	PValue    Float `json:"p_value"`
	Mismatch  bool  `json:"mismatch"`
}

// Float is a statistic that may be undefined (NaN, or infinite: no users, no
// exposures); it marshals as null then, which encoding/json cannot do for a
// float64.
type Float float64

// MarshalJSON writes f as a JSON number, or null if it is NaN or infinite.
func (f Float) MarshalJSON() ([]byte, error) {
	if !isFinite(float64(f)) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// Report reads counters (per strategy name as the track strings carry it,
// per reader) out against the plan.
//
// A reader's variant in a layer is the part of their strategy name that is
// one of the layer's experiments; a reader whose name has none is outside
// the layer and counted nowhere in it. A reader with clicks but no exposures
// (their exposure line lost, or a shared link) counts as a reader of their
// variant: dropping them would hide users from the sample-ratio test, and
// the delta method needs no exposures per reader.
func (p *Plan) Report(counters map[string]map[string]storage.UserCounts, opts ReportOptions) (*Report, error) {
	if opts.MDE == 0 {
		opts.MDE = DefaultMDE
	}
	if !(opts.MDE > 0) || math.IsInf(opts.MDE, 0) {
		return nil, fmt.Errorf("mde must be a positive fraction such as 0.05, got %v", opts.MDE)
	}
	if opts.Control != "" && !slices.ContainsFunc(p.Layers, func(l Layer) bool { return l.experiment(opts.Control) >= 0 }) {
		return nil, fmt.Errorf("control %q is not an experiment of the plan", opts.Control)
	}
	// Empty, not nil: a JSON reader gets [] rather than null.
	r := &Report{MDE: opts.MDE, Alpha: Alpha, Power: Power, Layers: []LayerReport{}, Warnings: []string{}}
	r.Warnings = append(r.Warnings, p.ambiguities()...)
	// sources[i][j] are the counters of the strategy names that put readers
	// in layer i's experiment j.
	sources := make([][][]map[string]storage.UserCounts, len(p.Layers))
	for i, l := range p.Layers {
		sources[i] = make([][]map[string]storage.UserCounts, len(l.Experiments))
	}
	for _, name := range sortedKeys(counters) {
		where, ok := p.placement(name)
		if !ok {
			r.Warnings = append(r.Warnings, fmt.Sprintf("strategy %q (%d users) is no combination of this plan's experiments (counters of another plan?): counted in no layer", name, len(counters[name])))
			continue
		}
		for i, j := range where {
			if j >= 0 {
				sources[i][j] = append(sources[i][j], counters[name])
			}
		}
	}
	for i, l := range p.Layers {
		if len(l.Experiments) == 0 {
			continue
		}
		control := max(l.experiment(opts.Control), 0)
		members := make([]map[string]storage.UserCounts, len(l.Experiments))
		for j, src := range sources[i] {
			members[j] = merge(src)
		}
		if n := crossed(members); n > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("layer %s: %d users appear in more than one of its variants (the plan changed mid-experiment?) and are counted in each", l.Name, n))
		}
		r.Layers = append(r.Layers, readLayer(l, control, members, opts.MDE))
	}
	return r, nil
}

// readLayer computes the readout of layer l, whose experiments' readers are
// members, against experiment control.
func readLayer(l Layer, control int, members []map[string]storage.UserCounts, mde float64) LayerReport {
	z := distuv.UnitNormal.Quantile(1 - Alpha/2)
	zPower := distuv.UnitNormal.Quantile(Power)
	tallies := make([]tally, len(members))
	totalBuckets := 0
	for j, m := range members {
		for _, c := range m {
			tallies[j].add(c)
		}
		totalBuckets += l.Experiments[j].buckets()
	}
	lr := LayerReport{Name: l.Name, Control: l.Experiments[control].Name}
	c := tallies[control]
	undefined := Float(math.NaN()) // what the control is not compared by
	for j, t := range tallies {
		e := l.Experiments[j]
		v := VariantReport{
			Name:        e.Name,
			Buckets:     e.buckets(),
			Share:       Float(float64(e.buckets()) / float64(totalBuckets)),
			Users:       int64(t.n),
			Exposures:   int64(t.y),
			Clicks:      int64(t.x),
			CTR:         around(t.ctr(), math.Sqrt(t.perUserVar()/t.n), z),
			PValue:      undefined,
			UsersPerArm: undefined,
			MoreUsers:   undefined,
		}
		if j != control {
			v.Lift, v.PValue = lift(t, c, z)
			// Seed 000's sample size per variant for a two-proportion test,
			// (z₁₋α/₂ + z_power)² · 2·p̄(1−p̄) / (p₂ − p₁)², with p₂ − p₁ the
			// MDE applied to the baseline and p̄(1−p̄) the per-unit variance
			// at the two rates' mean. Here the unit is a reader, so the
			// per-unit variance is the mean of the two arms' per-reader
			// delta-method variances: 2·p̄(1−p̄) becomes σc² + σv².
			zs, diff := z+zPower, c.ctr()*mde
			need := math.Ceil(zs * zs * (c.perUserVar() + t.perUserVar()) / (diff * diff))
			v.UsersPerArm = Float(need)
			v.MoreUsers = Float(max(0, need-min(c.n, t.n)))
		}
		lr.Users += v.Users
		lr.Variants = append(lr.Variants, v)
	}
	lr.SRM = sampleRatio(lr.Variants, lr.Users)
	return lr
}

// lift is t's CTR relative to c's, with its interval and p-value. The
// interval is built on log(Rt/Rc) = log Rt − log Rc, whose variance by the
// delta method is Var(Rt)/Rt² + Var(Rc)/Rc² for independent arms (the
// percent-change case of Deng et al. 2018, taken on the log scale): that
// keeps the interval of a ratio above −100% and nearer to normal than Rt/Rc.
func lift(t, c tally, z float64) (*Estimate, Float) {
	logRatio := math.Log(t.ctr() / c.ctr())
	se := math.Sqrt(t.perUserVar()/(t.n*t.ctr()*t.ctr()) + c.perUserVar()/(c.n*c.ctr()*c.ctr()))
	p := 2 * distuv.UnitNormal.Survival(math.Abs(logRatio/se))
	return &Estimate{
		Value: Float(math.Expm1(logRatio)),
		Low:   Float(math.Expm1(logRatio - z*se)),
		High:  Float(math.Expm1(logRatio + z*se)),
	}, Float(p)
}

// around is value ± z·se.
func around(value, se, z float64) Estimate {
	return Estimate{Value: Float(value), Low: Float(value - z*se), High: Float(value + z*se)}
}

// sampleRatio is Pearson's χ² goodness-of-fit test of the variants' users
// (users in all) against their configured shares, with k−1 degrees of
// freedom; undefined with fewer than two variants or no users.
func sampleRatio(variants []VariantReport, users int64) SRM {
	s := SRM{ChiSquare: Float(math.NaN()), DF: len(variants) - 1, PValue: Float(math.NaN())}
	if s.DF < 1 || users == 0 {
		return s
	}
	chi := 0.0
	for _, v := range variants {
		want := float64(users) * float64(v.Share)
		chi += math.Pow(float64(v.Users)-want, 2) / want
	}
	p := distuv.ChiSquared{K: float64(s.DF)}.Survival(chi)
	return SRM{ChiSquare: Float(chi), DF: s.DF, PValue: Float(p), Mismatch: p < SRMAlpha}
}

// tally holds the per-reader sums the delta method needs: readers n,
// clicks x, exposures y, and the sums of squares and products.
type tally struct{ n, x, y, xx, yy, xy float64 }

func (t *tally) add(c storage.UserCounts) {
	x, y := float64(c.Clicks), float64(c.Exposures)
	t.n++
	t.x += x
	t.y += y
	t.xx += x * x
	t.yy += y * y
	t.xy += x * y
}

// ctr is Σclicks/Σexposures; NaN without exposures.
func (t tally) ctr() float64 {
	if t.y == 0 {
		return math.NaN()
	}
	return t.x / t.y
}

// perUserVar is n·Var(R), the variance one reader contributes to the CTR
// estimate: Σ(xᵢ − R·yᵢ)² / ((n−1)·ȳ²), see the file comment. NaN with
// fewer than two readers or no exposures.
func (t tally) perUserVar() float64 {
	r := t.ctr()
	if t.n < 2 || math.IsNaN(r) {
		return math.NaN()
	}
	meanY := t.y / t.n
	// Expanding the residuals' squares can round below zero when they
	// all vanish (every reader has the same CTR).
	residuals := max(0, t.xx-2*r*t.xy+r*r*t.yy)
	return residuals / ((t.n - 1) * meanY * meanY)
}

// placement is, for each layer, the index of the experiment name puts the
// reader in (−1: outside the layer). It reads name as Assign builds it: the
// names of the matching experiments, one per matching layer in layer order,
// or the default when none matched. ok is false for a name Assign cannot
// build from this plan.
func (p *Plan) placement(name string) (where []int, ok bool) {
	where = make([]int, len(p.Layers))
	parts := strings.Split(name, "|")
	next := 0
	for i, l := range p.Layers {
		where[i] = -1
		if next < len(parts) {
			if j := l.experiment(parts[next]); j >= 0 {
				where[i] = j
				next++
			}
		}
	}
	if next == len(parts) {
		return where, true
	}
	if name == p.Default {
		for i := range where {
			where[i] = -1
		}
		return where, true
	}
	return nil, false
}

// ambiguities are the plan's names a strategy name cannot tell apart: an
// experiment name used in two layers, or the default named like an experiment
// of a layer some readers fall outside of. placement reads such names as the
// first layer's experiment, which may count readers in the wrong variant.
func (p *Plan) ambiguities() []string {
	var warnings []string
	layerOf := map[string]string{}
	for _, l := range p.Layers {
		owned := 0
		for _, e := range l.Experiments {
			owned += e.buckets()
			if first, ok := layerOf[e.Name]; ok {
				warnings = append(warnings, fmt.Sprintf("experiment %q is in layers %s and %s: a strategy name carrying it once is read as %s's", e.Name, first, l.Name, first))
				continue
			}
			layerOf[e.Name] = l.Name
		}
		if owned < l.Buckets && l.experiment(p.Default) >= 0 {
			warnings = append(warnings, fmt.Sprintf("layer %s: the default %q is also one of its experiments, so readers outside the layer are counted in that variant", l.Name, p.Default))
		}
	}
	return warnings
}

// experiment is the index of l's experiment called name, −1 if none is.
func (l Layer) experiment(name string) int {
	return slices.IndexFunc(l.Experiments, func(e Experiment) bool { return e.Name == name })
}

// buckets is how many of its layer's buckets e owns.
func (e Experiment) buckets() int {
	n := 0
	for _, own := range e.owned {
		if own {
			n++
		}
	}
	return n
}

// merge sums each reader's counters over maps: a reader under two names
// with the same variant in a layer (the plan changed another layer) is one
// reader of that layer. A single map is returned as it is, unchanged.
func merge(maps []map[string]storage.UserCounts) map[string]storage.UserCounts {
	if len(maps) == 1 {
		return maps[0]
	}
	size := 0
	for _, m := range maps {
		size += len(m)
	}
	merged := make(map[string]storage.UserCounts, size)
	for _, m := range maps {
		for user, c := range m {
			sum := merged[user]
			merged[user] = storage.UserCounts{Exposures: sum.Exposures + c.Exposures, Clicks: sum.Clicks + c.Clicks}
		}
	}
	return merged
}

// crossed counts the readers in more than one of members, each once: in the
// first map that has them, if a later one has them too.
func crossed(members []map[string]storage.UserCounts) int {
	in := func(maps []map[string]storage.UserCounts, user string) bool {
		return slices.ContainsFunc(maps, func(m map[string]storage.UserCounts) bool { _, ok := m[user]; return ok })
	}
	n := 0
	for j, m := range members {
		for user := range m {
			if in(members[j+1:], user) && !in(members[:j], user) {
				n++
			}
		}
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// WriteText prints the report as an operator reads it in a terminal: one
// table per layer, its sample-ratio verdict under it, then any warnings.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// tabwriter passes a write error back from the Write that flushed, not
	// from Flush: keep the first one and stop printing.
	var err error
	printf := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(tw, format, args...)
		}
	}
	printf("MDE %s relative, α %g, power %g; intervals are %g%%, per reader (delta method)\n", percent(r.MDE, 1), r.Alpha, r.Power, 100*(1-r.Alpha))
	if len(r.Layers) == 0 {
		printf("\nthe plan has no layers: nothing to compare\n")
	}
	for _, l := range r.Layers {
		printf("\nlayer %s: %d users, control %s\n", l.Name, l.Users, l.Control)
		printf("  variant\tsplit\tusers\texposures\tclicks\tctr\tctr 95%% ci\tlift\tlift 95%% ci\tp\tusers/arm\tmore users\n")
		for _, v := range l.Variants {
			lift, liftCI := "control", ""
			if v.Lift != nil {
				lift, liftCI = signed(v.Lift.Value), "["+signed(v.Lift.Low)+", "+signed(v.Lift.High)+"]"
			}
			printf("  %s\t%s\t%d (%s)\t%d\t%d\t%s\t[%s, %s]\t%s\t%s\t%s\t%s\t%s\n",
				v.Name, percent(float64(v.Share), 1), v.Users, percent(float64(v.Users)/float64(l.Users), 1), v.Exposures, v.Clicks,
				percent(float64(v.CTR.Value), 3), percent(float64(v.CTR.Low), 3), percent(float64(v.CTR.High), 3),
				lift, liftCI, pValue(v.PValue), count(v.UsersPerArm), count(v.MoreUsers))
		}
		printf("  %s\n", l.SRM.verdict())
	}
	if len(r.Warnings) > 0 {
		printf("\nwarnings:\n")
		for _, s := range r.Warnings {
			printf("  %s\n", s)
		}
	}
	if err != nil {
		return err
	}
	return tw.Flush()
}

// verdict says in words whether the layer's users are split as configured.
func (s SRM) verdict() string {
	switch {
	case math.IsNaN(float64(s.PValue)):
		return "sample ratio: not testable (fewer than two variants, or no users)"
	case s.Mismatch:
		return fmt.Sprintf("sample ratio: MISMATCH (p < %g): χ² %.1f, %d df, p %s; users are not split as configured, so this layer's lift is not to be trusted", SRMAlpha, s.ChiSquare, s.DF, pValue(s.PValue))
	}
	return fmt.Sprintf("sample ratio: ok, χ² %.2f (%d df), p %s", s.ChiSquare, s.DF, pValue(s.PValue))
}

// The cells of WriteText; "-" marks an undefined statistic.

func percent(f float64, decimals int) string {
	if !isFinite(f) {
		return "-"
	}
	scale := math.Pow(10, float64(decimals))
	x := math.Round(100*f*scale) / scale
	if x == 0 {
		x = 0 // not −0: a lift that rounds to nothing has no sign
	}
	return strconv.FormatFloat(x, 'f', decimals, 64) + "%"
}

func signed(f Float) string {
	s := percent(float64(f), 1)
	if s == "-" || strings.HasPrefix(s, "-") {
		return s
	}
	return "+" + s
}

func pValue(p Float) string {
	switch {
	case !isFinite(float64(p)):
		return "-"
	case p < 1e-4:
		return "<0.0001"
	}
	return strconv.FormatFloat(float64(p), 'f', 4, 64)
}

func count(f Float) string {
	if !isFinite(float64(f)) {
		return "-"
	}
	return strconv.FormatFloat(float64(f), 'f', 0, 64)
}

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
