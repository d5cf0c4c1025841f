package benchkit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseLadder(t *testing.T) {
	tests := []struct {
		spec   string
		factor float64
		want   []int
		err    bool
	}{
		{"", 2, nil, false},
		{"50:800", 2, []int{50, 100, 200, 400, 800}, false},
		{"50:700", 2, []int{50, 100, 200, 400}, false},
		{"100:200", 1.41, []int{100, 141, 199}, false},
		{"100, 300,1000", 2, []int{100, 300, 1000}, false},
		{"100,100", 2, nil, true},
		{"800:50", 2, nil, true},
		{"50:800", 1, nil, true},
		{"fast", 2, nil, true},
	}
	for _, tt := range tests {
		got, err := ParseLadder(tt.spec, tt.factor)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("ParseLadder(%q, %g) = %v, %v; want %v, error %v", tt.spec, tt.factor, got, err, tt.want, tt.err)
		}
	}
}

// fakeStep is a step whose p99 grows with the rate: within the knee's bounds
// up to limit.
func fakeStep(limit int) func(rate int) Step {
	return func(rate int) Step {
		p99 := 10.0
		if rate > limit {
			p99 = 500
		}
		return Step{Kind: KindHit, Mode: ModeOpen, Offered: float64(rate), Requests: 1000, P99Ms: p99}
	}
}

func TestLadderStopsAtTheFirstStepOverTheBoundsAndRefines(t *testing.T) {
	var ran []int
	l := Ladder{Rates: []int{100, 200, 400, 800, 1600}, Refine: true}
	step := fakeStep(600)
	steps, knee := l.Run(io.Discard, nil, func(rate int) Step { ran = append(ran, rate); return step(rate) })
	if want := []int{100, 200, 400, 800, 566}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if knee != (Knee{Rate: 566}) || len(steps) != 5 {
		t.Errorf("knee %+v after %d steps, want 566/s after 5", knee, len(steps))
	}
}

func TestLadderKnee(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		prepare func(int) error
		want    Knee
	}{
		{"top within the bounds", 10000, nil, Knee{Rate: 400, AtLeast: true}},
		{"first step over them", 50, nil, Knee{}},
		{"readers ran out", 10000, func(rate int) error {
			if rate > 200 {
				return errors.New("out of readers")
			}
			return nil
		}, Knee{Rate: 200, AtLeast: true}},
	}
	for _, tt := range tests {
		l := Ladder{Rates: []int{100, 200, 400}, Refine: true}
		if _, got := l.Run(io.Discard, tt.prepare, fakeStep(tt.limit)); got != tt.want {
			t.Errorf("%s: knee %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestNewStep(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := NewStep(KindHit, ModeOpen, 100, 0, Sample{Latencies: lat, Errors: 1, Elapsed: 2 * time.Second, FirstErr: errors.New("boom")})
	want := Step{Kind: KindHit, Mode: ModeOpen, Offered: 100, Achieved: 50, P50Ms: 51, P99Ms: 100, Requests: 101, Errors: 1,
		ErrorPct: 100.0 / 101, Seconds: 2, FirstError: "boom"}
	if s.Kind != want.Kind || s.Achieved != want.Achieved || s.P50Ms != want.P50Ms || s.P99Ms != want.P99Ms ||
		s.Requests != want.Requests || s.ErrorPct != want.ErrorPct || s.FirstError != want.FirstError {
		t.Errorf("NewStep = %+v, want %+v", s, want)
	}
	if s.WithinKnee() {
		t.Errorf("p99 100 ms, 1%% errors: within the knee's bounds, want over them")
	}
}

func TestClosedEndsWhenCallsAreExhausted(t *testing.T) {
	var n atomic.Int64
	s := Closed(4, time.Minute, func(context.Context) error {
		if n.Add(1) > 100 {
			return ErrExhausted
		}
		return nil
	})
	if !s.Cut || len(s.Latencies) != 100 || s.Errors != 0 {
		t.Errorf("Closed: cut %v, %d ok, %d errors; want cut, 100 ok, 0 errors", s.Cut, len(s.Latencies), s.Errors)
	}
}

func TestOpenCallsAtTheRate(t *testing.T) {
	var n atomic.Int64
	s := Open(200, 250*time.Millisecond, func(context.Context) error { n.Add(1); return nil })
	if n.Load() != 50 || len(s.Latencies) != 50 {
		t.Errorf("Open(200/s, 250ms): %d calls, want 50", n.Load())
	}
}

func TestParseProc(t *testing.T) {
	stat := "1234 (reco serve (x)) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 75 0 0 20 0 12 0 100 2000000 3000 18446744073709551615"
	ticks, err := parseStatTicks(stat)
	if err != nil || ticks != 325 {
		t.Errorf("parseStatTicks = %d, %v; want 325", ticks, err)
	}
	if _, err := parseStatTicks("1234 (x) S 1"); err == nil {
		t.Errorf("parseStatTicks of a short line: no error")
	}
	if got := parseStatusRSS("Name:\treco\nVmPeak:\t 9 kB\nVmRSS:\t   40500 kB\nThreads: 12\n"); got != 40500 {
		t.Errorf("parseStatusRSS = %d, want 40500", got)
	}
	procs, err := ParseProcs("routing=12, cache=34")
	if err != nil || !slices.Equal(procs, []Proc{{"routing", 12}, {"cache", 34}}) {
		t.Errorf("ParseProcs = %v, %v", procs, err)
	}
	if _, err := ParseProcs("routing"); err == nil {
		t.Errorf("ParseProcs(routing): no error")
	}
}

func TestMeterReadsThisProcess(t *testing.T) {
	m := NewMeter([]Proc{{"self", os.Getpid()}})
	m.Start()
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	s := Step{Requests: 10}
	m.Stop(&s)
	if len(s.Procs) != 1 || s.Procs[0].RSSMB <= 0 || s.GoCPUMsPerReq != s.Procs[0].CPUMsPerReq {
		t.Errorf("Stop: %+v", s)
	}
}

func TestRunRatiosTargetsAndBaseline(t *testing.T) {
	floor := Result{Section: SectionFloor, Steps: []Step{
		{Kind: KindChain, Mode: ModeClosed, Concurrency: 16, Achieved: 4000, P99Ms: 8},
		{Kind: KindChain, Mode: ModeOpen, Offered: 400, Achieved: 400, Requests: 4000, P99Ms: 4},
	}}
	split := Result{Section: SectionSplit, Knees: map[string]Knee{KindHit: {Rate: 800}, KindMiss: {Rate: 400}}, Steps: []Step{
		{Kind: KindHit, Mode: ModeOpen, Offered: 400, Requests: 4000, P99Ms: 6},
		{Kind: KindHit, Mode: ModeOpen, Offered: 800, Requests: 8000, P99Ms: 30, GoCPUMsPerReq: 0.5,
			Procs: []ProcUsage{{"routing", 0.2, 30}, {"recocenter", 0.3, 40}}},
	}}
	all := Result{Section: SectionAll, Steps: []Step{
		{Kind: KindHealth, Mode: ModeClosed, Concurrency: 16, Achieved: 10000},
		{Kind: KindHit, Mode: ModeClosed, Concurrency: 16, Achieved: 2500},
	}}
	run := NewRun([]Result{floor, split, all}, "")
	for name, want := range map[string]float64{
		nameRatioKnee: 0.2, nameRatioP99: 1.5, nameRatioAll: 0.25, nameHitCPU: 0.5,
		"split RSS, recocenter": 40, "floor chain throughput, 16 in flight": 4000,
	} {
		if m, ok := run.Metric(name); !ok || m.Value != want {
			t.Errorf("metric %q = %v (found %v), want %v", name, m.Value, ok, want)
		}
	}

	path := filepath.Join(t.TempDir(), "base.json")
	base := run
	base.Metrics = slices.Clone(run.Metrics)
	for i := range base.Metrics {
		if base.Metrics[i].Name == kneeName(SectionSplit, KindHit) {
			base.Metrics[i].Value = 400
		}
	}
	if err := base.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	read, err := ReadRun(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run.Print(&out, &read, path)
	for _, want := range []string{
		"split cache-hit knee", "800/s   (baseline 400/s, +100%, better)",
		"cache-hit refresh knee >= 50% of the floor chain's throughput", "0.20  NOT met",
		"Go CPU per cache-hit refresh, summed over processes <= 0.6 ms", "0.5 ms  met",
		"cache-miss knee >= 300/s", "400/s  met",
		"not measured",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
