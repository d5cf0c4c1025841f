// Package breaker skips a dependency that keeps failing (DESIGN §6: "a
// dependency that keeps failing is skipped by a circuit breaker until it
// recovers"): after a run of failed calls, calls fail at once for a short
// while instead of each waiting out its deadline, then one probe call decides
// whether the dependency is back. A dead HBase or Redis then costs a request
// ~0 ms, and the feed's fallbacks answer at once.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
)

// The thresholds are fixed rather than configured: they only decide how fast a
// dead dependency is noticed and a recovered one retried, and both want to be
// short.
const (
	// tripAfter failures in a row open the breaker whatever the traffic: a
	// dependency that answers nothing is dead.
	tripAfter = 5
	// Under load a healthy dependency fails some calls (deadlines) and
	// succeeds with the rest: the breaker must not turn that into refusing
	// everything. Within a window, it also opens once at least minCalls calls
	// were made and at least failRatio of them failed.
	window    = time.Second
	minCalls  = 20
	failRatio = 0.9
	// openFor is how long an open breaker fails calls at once before one probe
	// call may try: recovery is noticed within about this long.
	openFor = time.Second
	// minBlame is how long a call must have had before its caller's deadline
	// counts against the dependency: a call that started with a few
	// milliseconds of its request left (the rest spent elsewhere, say on a
	// slow HBase) says nothing about Redis, and must not trip its breaker.
	minBlame = 50 * time.Millisecond
)

// ErrOpen is wrapped by the error of a call the breaker refused.
var ErrOpen = errors.New("circuit breaker open")

// Breaker guards one dependency.
type Breaker struct {
	name string
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// New returns a closed breaker for the dependency name; onChange, if not nil, is
// told when it opens (true) and closes (false).
func New(name string, onChange func(name string, open bool)) *Breaker {
	st := gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     openFor,
		Interval:    window,
		ReadyToTrip: tripped,
	}
	if onChange != nil {
		st.OnStateChange = func(name string, _, to gobreaker.State) {
			switch to {
			case gobreaker.StateOpen:
				onChange(name, true)
			case gobreaker.StateClosed:
				onChange(name, false)
			}
		}
	}
	return &Breaker{name: name, cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](st)}
}

// tripped says whether the counts of the current window show a dependency
// failing: every one of a few calls, or nearly every one of many.
func tripped(c gobreaker.Counts) bool {
	if c.Requests < minCalls {
		return c.ConsecutiveFailures >= tripAfter
	}
	return float64(c.TotalFailures) >= failRatio*float64(c.Requests)
}

// Do runs fn unless the breaker is open; failed says which of fn's errors
// count against the dependency (nil: every error but the caller's own
// cancellation).
func (b *Breaker) Do(ctx context.Context, failed func(error) bool, fn func(ctx context.Context) error) error {
	done, err := b.cb.Allow()
	if err != nil {
		return fmt.Errorf("%s: %w", b.name, ErrOpen)
	}
	start := time.Now()
	err = fn(ctx)
	switch {
	case err == nil:
		done(nil)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The caller left: says nothing about the dependency.
		done(nil)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil && time.Since(start) < minBlame:
		// The caller's time ran out before the dependency had a fair chance.
		done(nil)
	case failed == nil || failed(err):
		done(err)
	default:
		done(nil)
	}
	return err
}
