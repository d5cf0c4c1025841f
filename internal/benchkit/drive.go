package benchkit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrExhausted, returned by a call, ends a closed loop's worker without
// counting as an error: what the calls need ran out (warmed readers, whose
// caches each refresh drains). The loop then ends early; Sample.Cut says so.
var ErrExhausted = errors.New("benchkit: nothing left to call with")

// Call is one request; it returns nil when the request succeeded.
type Call func(ctx context.Context) error

// Sample is what one run of calls measured.
type Sample struct {
	// Latencies are those of the calls that succeeded, in completion order.
	Latencies []time.Duration
	Errors    int64
	FirstErr  error
	// Elapsed runs from the first call's start to the last one's end.
	Elapsed time.Duration
	// Cut is true when a closed loop ended before its duration: a call
	// returned ErrExhausted.
	Cut bool
}

// recorder collects the outcomes of concurrent calls.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errs     int64
	firstErr error
}

func (r *recorder) record(started time.Time, err error) {
	el := time.Since(started)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.lat = append(r.lat, el)
}

func (r *recorder) sample(elapsed time.Duration, cut bool) Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Sample{Latencies: r.lat, Errors: r.errs, FirstErr: r.firstErr, Elapsed: elapsed, Cut: cut}
}

// Open calls call rate times per second for d, each call in its own
// goroutine (an open loop: arrivals do not wait for answers, as a web
// backend's users do not), and waits for the last one to end. Calls are due
// at fixed times from the start, so a late wake-up is made up at once rather
// than lowering the rate.
func Open(rate int, d time.Duration, call Call) Sample {
	rec := &recorder{lat: make([]time.Duration, 0, int(float64(rate)*d.Seconds())+1)}
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(max(rate, 1))
	start := time.Now()
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.Now()
			rec.record(t, call(context.Background()))
		}()
	}
	wg.Wait()
	return rec.sample(time.Since(start), false)
}

// Closed keeps concurrency calls in flight for d (a closed loop: each worker
// starts its next call when the last one answered), or until a call returns
// ErrExhausted.
func Closed(concurrency int, d time.Duration, call Call) Sample {
	rec := &recorder{}
	var (
		wg  sync.WaitGroup
		cut atomic.Bool
	)
	start := time.Now()
	end := start.Add(d)
	for range max(concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !cut.Load() && time.Now().Before(end) {
				t := time.Now()
				err := call(context.Background())
				if errors.Is(err, ErrExhausted) {
					cut.Store(true)
					return
				}
				rec.record(t, err)
			}
		}()
	}
	wg.Wait()
	return rec.sample(time.Since(start), cut.Load())
}
