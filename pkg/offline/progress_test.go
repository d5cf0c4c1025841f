package offline

import (
	"strings"
	"testing"
	"time"
)

func TestProgressLinesWithoutATerminal(t *testing.T) {
	var out strings.Builder
	p := &progress{w: &out, lineEvery: time.Nanosecond}
	b := p.start("similar", 4)
	b.add(1)
	b.add(3)
	b.finish("%d articles", 4)
	got := out.String()
	for _, want := range []string{"similar: started\n", "similar: 25% (1/4)", "similar: 100% (4/4)", "similar: 4 articles ("} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\r") {
		t.Errorf("lines for a log hold a carriage return:\n%q", got)
	}
}

func TestProgressBarOnATerminal(t *testing.T) {
	var out strings.Builder
	p := &progress{w: &out, tty: true}
	b := p.start("als", 10)
	b.lastOut = time.Time{} // due now
	b.add(5)
	b.finish("done")
	got := out.String()
	if !strings.Contains(got, "\rals") || !strings.Contains(got, "[===============               ]  50% 5/10") || !strings.Contains(got, "\r\033[Kals: done") {
		t.Errorf("terminal output = %q", got)
	}
}

func TestNilProgressIsQuiet(t *testing.T) {
	var p *progress
	b := p.start("x", 1)
	b.add(1)
	b.finish("done")
	if b != nil {
		t.Error("a nil progress made a bar")
	}
}
