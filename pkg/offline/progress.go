package offline

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows long steps: a redrawn bar on a terminal, a line every
// lineEvery otherwise (logs and CI keep every line, so a bar's carriage returns
// would be noise there).
type progress struct {
	w   io.Writer
	tty bool
	// lineEvery is the period of the non-terminal lines.
	lineEvery time.Duration
}

// bar is one step's progress. A nil *bar is valid and shows nothing, so code
// under test needs no writer.
type bar struct {
	p       *progress
	name    string
	total   int
	done    atomic.Int64
	start   time.Time
	mu      sync.Mutex
	lastOut time.Time
	drawn   bool
}

func (p *progress) start(name string, total int) *bar {
	if p == nil || p.w == nil {
		return nil
	}
	b := &bar{p: p, name: name, total: total, start: time.Now()}
	b.lastOut = b.start
	if !p.tty {
		fmt.Fprintf(p.w, "%s: started\n", name)
	}
	return b
}

// add records n more units done and redraws when due.
func (b *bar) add(n int) {
	if b == nil {
		return
	}
	done := b.done.Add(int64(n))
	period := b.p.lineEvery
	if b.p.tty {
		period = 100 * time.Millisecond
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.lastOut) < period {
		return
	}
	b.lastOut = now
	b.draw(int(done), now)
}

func (b *bar) draw(done int, now time.Time) {
	elapsed := now.Sub(b.start).Round(100 * time.Millisecond)
	frac := 0.0
	if b.total > 0 {
		frac = min(1, float64(done)/float64(b.total))
	}
	if b.p.tty {
		const width = 30
		fill := int(frac * width)
		fmt.Fprintf(b.p.w, "\r%-14s [%s%s] %3.0f%% %d/%d %v ", b.name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac, done, b.total, elapsed)
		b.drawn = true
		return
	}
	fmt.Fprintf(b.p.w, "%s: %.0f%% (%d/%d) after %v\n", b.name, 100*frac, done, b.total, elapsed)
}

// finish ends the step with a summary line.
func (b *bar) finish(format string, args ...any) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.p.tty && b.drawn {
		fmt.Fprint(b.p.w, "\r\033[K")
	}
	fmt.Fprintf(b.p.w, "%s: %s (%v)\n", b.name, fmt.Sprintf(format, args...), time.Since(b.start).Round(10*time.Millisecond))
}
