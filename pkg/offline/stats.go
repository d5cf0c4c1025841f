package offline

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// StepStats is what one build step cost.
type StepStats struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
	// PeakHeap is the most bytes of live and not yet swept heap objects seen
	// during the step (sampled every 20 ms).
	PeakHeap uint64 `json:"peak_heap_bytes"`
	// PeakRSS is the most resident memory of the process seen during the step
	// (sampled every 20 ms): what counts against a machine's memory.
	PeakRSS uint64 `json:"peak_rss_bytes"`
}

// meter samples memory in the background and times steps.
type meter struct {
	mu      sync.Mutex
	steps   []StepStats
	cur     *StepStats
	started time.Time
	stop    chan struct{}
	done    chan struct{}
}

func newMeter() *meter {
	m := &meter{stop: make(chan struct{}), done: make(chan struct{})}
	go m.sample()
	return m
}

func (m *meter) sample() {
	defer close(m.done)
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(s)
		heap := s[0].Value.Uint64()
		rss := residentBytes()
		m.mu.Lock()
		if m.cur != nil {
			m.cur.PeakHeap = max(m.cur.PeakHeap, heap)
			m.cur.PeakRSS = max(m.cur.PeakRSS, rss)
		}
		m.mu.Unlock()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// step ends the current step (if any) and starts the named one.
func (m *meter) step(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.endLocked()
	m.steps = append(m.steps, StepStats{Name: name})
	m.cur = &m.steps[len(m.steps)-1]
	m.started = time.Now()
	// A step shorter than the sampling period still gets one sample.
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	m.cur.PeakHeap, m.cur.PeakRSS = s[0].Value.Uint64(), residentBytes()
}

func (m *meter) endLocked() {
	if m.cur != nil {
		m.cur.Duration = time.Since(m.started)
		m.cur = nil
	}
}

// close ends the last step, stops sampling and returns every step.
func (m *meter) close() []StepStats {
	m.mu.Lock()
	m.endLocked()
	m.mu.Unlock()
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]StepStats(nil), m.steps...)
}

// residentBytes is the process's resident set size, from /proc (0 where there
// is none).
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// PeakRSS is the highest resident set size of the process so far (VmHWM), or 0
// where /proc does not say.
func PeakRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := bytes.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseUint(string(f[0]), 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// WriteStats prints steps as a table.
func WriteStats(w io.Writer, steps []StepStats) {
	fmt.Fprintf(w, "%-16s %10s %14s %14s\n", "step", "time", "peak heap MiB", "peak RSS MiB")
	var total time.Duration
	var heap, rss uint64
	for _, s := range steps {
		fmt.Fprintf(w, "%-16s %10s %14.0f %14.0f\n", s.Name, s.Duration.Round(10*time.Millisecond), mib(s.PeakHeap), mib(s.PeakRSS))
		total += s.Duration
		heap, rss = max(heap, s.PeakHeap), max(rss, s.PeakRSS)
	}
	fmt.Fprintf(w, "%-16s %10s %14.0f %14.0f\n", "total", total.Round(10*time.Millisecond), mib(heap), mib(rss))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
