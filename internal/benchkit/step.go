package benchkit

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The knee of a request kind is the highest offered rate of its ladder at which
// p99 stays within KneeP99 and fewer than KneeErrorPct percent of the calls
// fail (issue 11).
const (
	KneeP99      = 50 * time.Millisecond
	KneeErrorPct = 0.1
)

// Modes of a step.
const (
	ModeOpen   = "open"   // a fixed rate
	ModeClosed = "closed" // a fixed number in flight
)

// Step is one measured run of one request kind.
type Step struct {
	Kind string `json:"kind"`
	Mode string `json:"mode"`
	// Offered is the open loop's rate (calls/s); Concurrency the closed
	// loop's calls in flight.
	Offered     float64 `json:"offered_per_s,omitempty"`
	Concurrency int     `json:"concurrency,omitempty"`
	// Achieved is successful calls per second.
	Achieved   float64 `json:"achieved_per_s"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	ErrorPct   float64 `json:"error_pct"`
	Seconds    float64 `json:"seconds"`
	Cut        bool    `json:"cut,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	// Procs are the processes under test during the step (with --pids);
	// GoCPUMsPerReq sums their CPU per request.
	Procs         []ProcUsage `json:"procs,omitempty"`
	GoCPUMsPerReq float64     `json:"go_cpu_ms_per_req,omitempty"`
}

// NewStep summarizes a sample as a step of kind.
func NewStep(kind, mode string, offered float64, concurrency int, s Sample) Step {
	lat := slices.Clone(s.Latencies)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return ms(lat[min(len(lat)-1, int(p*float64(len(lat))))])
	}
	st := Step{Kind: kind, Mode: mode, Offered: offered, Concurrency: concurrency,
		P50Ms: pct(0.50), P99Ms: pct(0.99), Requests: int64(len(lat)) + s.Errors, Errors: s.Errors,
		Seconds: s.Elapsed.Seconds(), Cut: s.Cut}
	if s.Elapsed > 0 {
		st.Achieved = float64(len(lat)) / s.Elapsed.Seconds()
	}
	if st.Requests > 0 {
		st.ErrorPct = 100 * float64(st.Errors) / float64(st.Requests)
	}
	if s.FirstErr != nil {
		st.FirstError = s.FirstErr.Error()
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WithinKnee says whether the step meets the knee's bounds.
func (s Step) WithinKnee() bool {
	return s.Requests > 0 && s.P99Ms <= ms(KneeP99) && s.ErrorPct < KneeErrorPct
}

// Knee is a request kind's knee in one ladder.
type Knee struct {
	// Rate is the highest offered rate within the bounds; 0 when no step was.
	Rate float64 `json:"rate_per_s"`
	// AtLeast is true when the ladder ended within them (its top step was,
	// or the next step could not be readied): the knee is at least Rate.
	AtLeast bool `json:"at_least,omitempty"`
}

// Result is what one run of a benchmark command measured, as it writes it
// with --json: the steps in order and the knee of each laddered kind.
type Result struct {
	// Section names the setup measured ("floor", "split", "all-in-one").
	Section string          `json:"section"`
	Steps   []Step          `json:"steps"`
	Knees   map[string]Knee `json:"knees,omitempty"`
}

// WriteJSON writes r to path (nothing when path is empty).
func (r Result) WriteJSON(path string) error {
	if path == "" {
		return nil
	}
	return writeJSON(path, r)
}

// ReadResult reads a result written by WriteJSON.
func ReadResult(path string) (Result, error) {
	var r Result
	err := readJSON(path, &r)
	return r, err
}

// PrintHeader prints the column heads of PrintStep's lines.
func PrintHeader(w io.Writer) {
	fmt.Fprintf(w, "%-11s %-6s %9s %10s %9s %9s %8s %12s\n", "kind", "mode", "load", "achieved", "p50", "p99", "errors", "Go CPU/req")
}

// PrintStep prints one line per step, and one more with the processes' CPU
// per request and RSS when they were measured.
func PrintStep(w io.Writer, s Step) {
	load := fmt.Sprintf("%.0f/s", s.Offered)
	if s.Mode == ModeClosed {
		load = fmt.Sprintf("%d conc", s.Concurrency)
	}
	cpu := ""
	if len(s.Procs) > 0 {
		cpu = fmt.Sprintf("%.3f ms", s.GoCPUMsPerReq)
	}
	mark := ""
	if s.Mode == ModeOpen && !s.WithinKnee() {
		mark = "  over the knee's bounds"
	}
	if s.Cut {
		mark += "  (cut short: no warmed readers left)"
	}
	fmt.Fprintf(w, "%-11s %-6s %9s %8.0f/s %7.2fms %7.2fms %7.2f%% %12s%s\n", s.Kind, s.Mode, load, s.Achieved, s.P50Ms, s.P99Ms, s.ErrorPct, cpu, mark)
	if len(s.Procs) > 0 {
		var cpus, rss []string
		for _, p := range s.Procs {
			cpus = append(cpus, fmt.Sprintf("%s %.3f", p.Name, p.CPUMsPerReq))
			rss = append(rss, fmt.Sprintf("%s %.0f", p.Name, p.RSSMB))
		}
		fmt.Fprintf(w, "    CPU ms/req: %s; RSS MB: %s\n", strings.Join(cpus, ", "), strings.Join(rss, ", "))
	}
	if s.FirstError != "" {
		fmt.Fprintf(w, "    first error: %s\n", s.FirstError)
	}
}

// PrintKnee prints a kind's knee in the form bench.sh reads back:
// "knee KIND RATE/s".
func PrintKnee(w io.Writer, kind string, k Knee) {
	note := ""
	switch {
	case k.Rate == 0:
		note = fmt.Sprintf(" (no step had p99 <= %v and < %.1f%% errors)", KneeP99, KneeErrorPct)
	case k.AtLeast:
		note = " (the ladder ended within the bounds: the knee is at least this)"
	}
	fmt.Fprintf(w, "knee %s %.0f/s%s\n", kind, k.Rate, note)
}
