package benchkit

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Ladder is the steps that find one request kind's knee: open-loop steps at
// increasing rates, stopped at the first one over the knee's bounds (every
// step beyond would only queue deeper, and take the server longer to recover).
type Ladder struct {
	// Rates are the offered rates in increasing order.
	Rates []int
	// Refine tries one more rate after the first step over the bounds: the
	// geometric mean of it and the last step within them, so a factor-2
	// ladder places the knee within a factor √2.
	Refine bool
	// Pause is the idle time before each step, for the server to settle after
	// the last one.
	Pause time.Duration
}

// ParseLadder reads a ladder's rates: "START:MAX" (START, START·factor, …
// up to MAX) or a comma-separated list of increasing rates. An empty spec is
// no ladder.
func ParseLadder(spec string, factor float64) ([]int, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	if from, to, ok := strings.Cut(spec, ":"); ok {
		lo, err1 := strconv.Atoi(strings.TrimSpace(from))
		hi, err2 := strconv.Atoi(strings.TrimSpace(to))
		if err1 != nil || err2 != nil || lo < 1 || hi < lo {
			return nil, fmt.Errorf("ladder %q: want START:MAX with 1 <= START <= MAX", spec)
		}
		if factor <= 1 {
			return nil, fmt.Errorf("ladder factor must be above 1, got %g", factor)
		}
		var rates []int
		for r := float64(lo); math.Round(r) <= float64(hi); r *= factor {
			if n := int(math.Round(r)); len(rates) == 0 || n > rates[len(rates)-1] {
				rates = append(rates, n)
			}
		}
		return rates, nil
	}
	var rates []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || len(rates) > 0 && n <= rates[len(rates)-1] {
			return nil, fmt.Errorf("ladder %q: want increasing positive rates, comma-separated, or START:MAX", spec)
		}
		rates = append(rates, n)
	}
	return rates, nil
}

// Run runs the ladder, printing each step to w as it ends, and returns the
// steps and the knee. prepare (nil: none) readies each step before its pause,
// unmeasured; an error ends the ladder there.
func (l Ladder) Run(w io.Writer, prepare func(rate int) error, step func(rate int) Step) ([]Step, Knee) {
	var (
		steps []Step
		knee  Knee
	)
	do := func(rate int) (within, ok bool) {
		if prepare != nil {
			if err := prepare(rate); err != nil {
				fmt.Fprintf(w, "    ladder ends before %d/s: %v\n", rate, err)
				return false, false
			}
		}
		time.Sleep(l.Pause)
		s := step(rate)
		PrintStep(w, s)
		steps = append(steps, s)
		if s.WithinKnee() && float64(rate) > knee.Rate {
			knee.Rate = float64(rate)
		}
		return s.WithinKnee(), true
	}
	for i, rate := range l.Rates {
		within, ok := do(rate)
		if !ok {
			knee.AtLeast = knee.Rate > 0
			break
		}
		if within {
			knee.AtLeast = i == len(l.Rates)-1
			continue
		}
		if l.Refine && knee.Rate > 0 {
			if mid := int(math.Round(math.Sqrt(knee.Rate * float64(rate)))); mid > int(knee.Rate) && mid < rate {
				do(mid)
			}
		}
		break
	}
	return steps, knee
}

// StepAt returns the open-loop step of kind in steps whose offered rate is
// within 3% of rate.
func StepAt(steps []Step, kind string, rate float64) (Step, bool) {
	for _, s := range steps {
		if s.Kind == kind && s.Mode == ModeOpen && rate > 0 && math.Abs(s.Offered-rate) <= 0.03*rate {
			return s, true
		}
	}
	return Step{}, false
}
