package benchkit

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Sections of a `make bench` run, as bench.sh names them (--section).
const (
	SectionFloor = "floor"      // cmd/floorchain: the floor chain
	SectionSplit = "split"      // the suite in split mode on HBase + Redis + Kafka
	SectionAll   = "all-in-one" // make run's default: one process, embedded stores
)

// Request kinds of the steps.
const (
	KindMiss    = "cache-miss"
	KindHit     = "cache-hit"
	KindHistory = "history"
	KindSimilar = "similar" // article_recommend
	KindHealth  = "health"  // grpc.health.v1.Health/Check
	KindChain   = "chain"   // one call down the floor chain
)

// Run is one `make bench` run: the results of its commands by section and the
// figures derived from them. bench/baseline.json is one, committed.
type Run struct {
	Recorded string            `json:"recorded"`
	Note     string            `json:"note,omitempty"`
	Sections map[string]Result `json:"sections"`
	Metrics  []Metric          `json:"metrics"`
}

// Metric is one figure of a run, compared by Name with the baseline's.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Higher is true when a larger value is better.
	Higher bool `json:"higher"`
}

// NewRun merges results (several may share a section: their steps are
// concatenated, their knees merged) and derives the run's metrics.
func NewRun(results []Result, note string) Run {
	run := Run{Recorded: time.Now().UTC().Format(time.RFC3339), Note: note, Sections: map[string]Result{}}
	for _, r := range results {
		s := run.Sections[r.Section]
		s.Section = r.Section
		s.Steps = append(s.Steps, r.Steps...)
		for k, v := range r.Knees {
			if s.Knees == nil {
				s.Knees = map[string]Knee{}
			}
			s.Knees[k] = v
		}
		run.Sections[r.Section] = s
	}
	run.Metrics = derive(run.Sections)
	return run
}

// ReadRun reads a run written by WriteJSON.
func ReadRun(path string) (Run, error) {
	var r Run
	err := readJSON(path, &r)
	return r, err
}

// WriteJSON writes the run to path.
func (r Run) WriteJSON(path string) error { return writeJSON(path, r) }

// Metric returns the metric named name.
func (r Run) Metric(name string) (Metric, bool) {
	i := slices.IndexFunc(r.Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return Metric{}, false
	}
	return r.Metrics[i], true
}

// Names of the metrics the targets and ratios use.
func kneeName(section, kind string) string { return section + " " + kind + " knee" }
func closedName(section, kind string, c int) string {
	return fmt.Sprintf("%s %s throughput, %d in flight", section, kind, c)
}

const (
	nameHalfKneeHitP99   = SectionSplit + " cache-hit p99 at half the knee"
	nameFloorHalfKneeP99 = SectionFloor + " chain p99 at half the split cache-hit knee"
	nameHitCPU           = SectionSplit + " cache-hit Go CPU per request at the knee, all processes"
	nameRatioKnee        = "ratio: split cache-hit knee / floor chain throughput"
	nameRatioP99         = "ratio: split cache-hit p99 / floor chain p99, at half the knee"
	nameRatioAll         = "ratio: all-in-one cache-hit / health throughput, same in flight"
)

// kneeStep is the step a kind's CPU and memory are read at: the knee's, or
// the ladder's first when no step was within the bounds.
func kneeStep(r Result, kind string) (Step, bool) {
	if k, ok := r.Knees[kind]; ok && k.Rate > 0 {
		return StepAt(r.Steps, kind, k.Rate)
	}
	for _, s := range r.Steps {
		if s.Kind == kind && s.Mode == ModeOpen {
			return s, true
		}
	}
	return Step{}, false
}

// derive computes the flat figures a run is compared on.
func derive(sections map[string]Result) []Metric {
	var out []Metric
	add := func(name string, v float64, unit string, higher bool) {
		out = append(out, Metric{Name: name, Value: round3(v), Unit: unit, Higher: higher})
	}
	kinds := []string{KindMiss, KindHit, KindHistory, KindSimilar}
	for _, sec := range []string{SectionFloor, SectionSplit, SectionAll} {
		r, ok := sections[sec]
		if !ok {
			continue
		}
		for _, s := range r.Steps {
			if s.Mode == ModeClosed {
				add(closedName(sec, s.Kind, s.Concurrency), s.Achieved, "/s", true)
				add(fmt.Sprintf("%s %s p50, %d in flight", sec, s.Kind, s.Concurrency), s.P50Ms, "ms", false)
				add(fmt.Sprintf("%s %s p99, %d in flight", sec, s.Kind, s.Concurrency), s.P99Ms, "ms", false)
				if len(s.Procs) > 0 {
					add(fmt.Sprintf("%s %s Go CPU per request, %d in flight", sec, s.Kind, s.Concurrency), s.GoCPUMsPerReq, "ms", false)
				}
			}
		}
		for _, kind := range append(kinds, KindChain) {
			if k, ok := r.Knees[kind]; ok {
				add(kneeName(sec, kind), k.Rate, "/s", true)
			}
			if s, ok := kneeStep(r, kind); ok && len(s.Procs) > 0 {
				add(fmt.Sprintf("%s %s Go CPU per request at the knee, all processes", sec, kind), s.GoCPUMsPerReq, "ms", false)
				if kind == KindHit {
					for _, p := range s.Procs {
						add(fmt.Sprintf("%s cache-hit CPU per request at the knee, %s", sec, p.Name), p.CPUMsPerReq, "ms", false)
					}
				}
			}
		}
		// RSS: each process's largest over the section's steps.
		rss := map[string]float64{}
		var names []string
		for _, s := range r.Steps {
			for _, p := range s.Procs {
				if _, ok := rss[p.Name]; !ok {
					names = append(names, p.Name)
				}
				rss[p.Name] = max(rss[p.Name], p.RSSMB)
			}
		}
		for _, n := range names {
			add(fmt.Sprintf("%s RSS, %s", sec, n), rss[n], "MB", false)
		}
	}

	// The done-when's ratios: the split cache-hit against the floor chain
	// measured in the same run, and make run's refreshes against its health
	// check.
	split, floor := sections[SectionSplit], sections[SectionFloor]
	knee, laddered := split.Knees[KindHit]
	hitKnee := knee.Rate
	for _, s := range floor.Steps {
		if s.Mode == ModeClosed && s.Kind == KindChain && s.Achieved > 0 && laddered {
			add(nameRatioKnee, hitKnee/s.Achieved, "", true)
			break
		}
	}
	if hitKnee > 0 {
		hit, okHit := StepAt(split.Steps, KindHit, hitKnee/2)
		fl, okFloor := StepAt(floor.Steps, KindChain, hitKnee/2)
		if okHit {
			add(nameHalfKneeHitP99, hit.P99Ms, "ms", false)
		}
		if okFloor {
			add(nameFloorHalfKneeP99, fl.P99Ms, "ms", false)
		}
		if okHit && okFloor && fl.P99Ms > 0 {
			add(nameRatioP99, hit.P99Ms/fl.P99Ms, "", false)
		}
	}
	all := sections[SectionAll]
	for _, h := range all.Steps {
		if h.Mode != ModeClosed || h.Kind != KindHealth || h.Achieved == 0 {
			continue
		}
		for _, s := range all.Steps {
			if s.Mode == ModeClosed && s.Kind == KindHit && s.Concurrency == h.Concurrency {
				add(nameRatioAll, s.Achieved/h.Achieved, "", true)
			}
		}
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// target is one of issue 11's done-when bounds on a metric.
type target struct {
	metric  string
	atLeast bool
	bound   float64
	what    string
}

// targets are issue 11's done-when figures.
var targets = []target{
	{nameRatioKnee, true, 0.5, "cache-hit refresh knee >= 50% of the floor chain's throughput"},
	{nameRatioP99, false, 2, "cache-hit p99 at half the knee <= 2x the floor chain's p99 at that rate"},
	{kneeName(SectionSplit, KindMiss), true, 300, "cache-miss knee >= 300/s"},
	{kneeName(SectionSplit, KindHistory), true, 1500, "history-page knee >= 1,500/s"},
	{kneeName(SectionSplit, KindSimilar), true, 3000, "article_recommend knee >= 3,000/s"},
	{nameHitCPU, false, 0.6, "Go CPU per cache-hit refresh, summed over processes <= 0.6 ms"},
	{nameRatioAll, true, 0.2, "make run: warmed refreshes >= 20% of a health check's throughput"},
}

// Print writes the run's figures next to the baseline's (base may be nil) and
// the done-when targets.
func (r Run) Print(w io.Writer, base *Run, baseName string) {
	if base != nil {
		fmt.Fprintf(w, "== this run (%s) against %s (recorded %s%s)\n", r.Note, baseName, base.Recorded, noteOf(base.Note))
	} else {
		fmt.Fprintf(w, "== this run (%s; no baseline to compare with)\n", r.Note)
	}
	for _, m := range r.Metrics {
		line := fmt.Sprintf("%-66s %12s", m.Name, format(m.Value, m.Unit))
		if base != nil {
			if b, ok := base.Metric(m.Name); ok {
				line += fmt.Sprintf("   (baseline %s, %s)", format(b.Value, b.Unit), change(m, b.Value))
			} else {
				line += "   (not in the baseline)"
			}
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "== issue 11's targets, this run")
	for _, t := range targets {
		value, verdict := "", "not measured"
		if m, ok := r.Metric(t.metric); ok {
			pass := m.Value >= t.bound
			if !t.atLeast {
				pass = m.Value <= t.bound
			}
			value, verdict = format(m.Value, m.Unit), "met"
			if !pass {
				verdict = "NOT met"
			}
		}
		fmt.Fprintf(w, "%-74s %10s  %s\n", t.what, value, verdict)
	}
}

func noteOf(note string) string {
	if note == "" {
		return ""
	}
	return "; " + note
}

func format(v float64, unit string) string {
	switch unit {
	case "/s":
		return fmt.Sprintf("%.0f/s", v)
	case "ms":
		return fmt.Sprintf("%.3g ms", v)
	case "MB":
		return fmt.Sprintf("%.0f MB", v)
	}
	return strings.TrimSpace(fmt.Sprintf("%.2f %s", v, unit))
}

// change is the relative change from b to m, and whether it is for the better.
func change(m Metric, b float64) string {
	if b == 0 {
		if m.Value == 0 {
			return "same"
		}
		return "new"
	}
	pct := 100 * (m.Value - b) / math.Abs(b)
	word := "better"
	if (pct > 0) != m.Higher {
		word = "worse"
	}
	if math.Abs(pct) < 0.5 {
		return "same"
	}
	return fmt.Sprintf("%+.0f%%, %s", pct, word)
}
