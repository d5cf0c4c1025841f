package storagetest

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// Latencies records the duration of each operation a benchmark times, so it can
// report the percentiles a mean (ns/op) hides: a store whose p99 is a hundred
// times its p50 makes a feed stall even when its average looks fine. The zero
// value is ready; it is safe for concurrent use, so the bodies of b.RunParallel
// can share one.
//
//	var lat storagetest.Latencies
//	for b.Loop() {
//		start := time.Now()
//		op()
//		lat.Since(start)
//	}
//	lat.Report(b)
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Since records the time elapsed since start.
func (l *Latencies) Since(start time.Time) { l.Record(time.Since(start)) }

// Record records one duration.
func (l *Latencies) Record(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// Len is the number of durations recorded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of the
// durations recorded, or 0 if there are none.
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	rank := int(math.Ceil(p / 100 * float64(len(l.d))))
	return l.d[min(max(rank, 1), len(l.d))-1]
}

// Report reports the p50 and p99 of the durations recorded as the benchmark
// metrics "p50-µs" and "p99-µs".
func (l *Latencies) Report(b *testing.B) {
	b.Helper()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(l.Percentile(50)), "p50-µs")
	b.ReportMetric(us(l.Percentile(99)), "p99-µs")
}
