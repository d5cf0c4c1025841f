package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proc is a process under test, by the name a report gives it.
type Proc struct {
	Name string
	PID  int
}

// ParseProcs reads "name=pid,name=pid,…" (the --pids flag).
func ParseProcs(spec string) ([]Proc, error) {
	var procs []Proc
	for _, f := range strings.Split(spec, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, pid, ok := strings.Cut(f, "=")
		n, err := strconv.Atoi(pid)
		if !ok || name == "" || err != nil || n <= 0 {
			return nil, fmt.Errorf("--pids %q: want name=pid,name=pid,…", spec)
		}
		procs = append(procs, Proc{Name: name, PID: n})
	}
	return procs, nil
}

// ProcUsage is what one process used during a step.
type ProcUsage struct {
	Name string `json:"name"`
	// CPUMsPerReq is the process's user + system CPU time during the step,
	// divided by the step's requests.
	CPUMsPerReq float64 `json:"cpu_ms_per_req"`
	// RSSMB is its resident memory at the step's end (VmRSS).
	RSSMB float64 `json:"rss_mb"`
}

// procStat is one reading of a process's counters.
type procStat struct {
	cpuTicks int64
	rssKB    int64
}

// readProc reads the process's CPU time (utime + stime, in clock ticks) from
// /proc/PID/stat and its VmRSS from /proc/PID/status.
func readProc(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	ticks, err := parseStatTicks(string(b))
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStat{}, err
	}
	return procStat{cpuTicks: ticks, rssKB: parseStatusRSS(string(b))}, nil
}

// parseStatTicks returns utime + stime of a /proc/PID/stat line: fields 14
// and 15, counted after the command name, which may hold spaces and is the
// only field in parentheses.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want 13 or more", len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("utime %q, stime %q: not integers", f[11], f[12])
	}
	return utime + stime, nil
}

// parseStatusRSS returns VmRSS in kB from /proc/PID/status (0 without it).
func parseStatusRSS(status string) int64 {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// clockTicks is the kernel's USER_HZ (getconf CLK_TCK), the unit of
// /proc/PID/stat's times; Linux has used 100 on every common architecture.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
})

// Meter measures the processes' CPU and memory around a step. A nil or empty
// Meter measures nothing.
type Meter struct {
	procs []Proc
	start []procStat
}

// NewMeter returns a meter of procs.
func NewMeter(procs []Proc) *Meter { return &Meter{procs: procs} }

// Start reads the counters at a step's start.
func (m *Meter) Start() {
	if m == nil {
		return
	}
	m.start = m.start[:0]
	for _, p := range m.procs {
		st, err := readProc(p.PID)
		if err != nil {
			st.cpuTicks = -1 // gone: no usage at the end either
		}
		m.start = append(m.start, st)
	}
}

// Stop reads the counters again and sets the step's per-process usage and
// their sum per request. A process that went away is left out and reported
// on stderr.
func (m *Meter) Stop(s *Step) {
	if m == nil || len(m.procs) == 0 || len(m.start) != len(m.procs) {
		return
	}
	s.Procs, s.GoCPUMsPerReq = nil, 0
	for i, p := range m.procs {
		st, err := readProc(p.PID)
		if err != nil || m.start[i].cpuTicks < 0 {
			fmt.Fprintf(os.Stderr, "benchkit: process %s (%d) not measured: %v\n", p.Name, p.PID, err)
			continue
		}
		u := ProcUsage{Name: p.Name, RSSMB: float64(st.rssKB) / 1024}
		if s.Requests > 0 {
			cpuMs := float64(st.cpuTicks-m.start[i].cpuTicks) * 1000 / clockTicks()
			u.CPUMsPerReq = cpuMs / float64(s.Requests)
		}
		s.Procs = append(s.Procs, u)
		s.GoCPUMsPerReq += u.CPUMsPerReq
	}
}

// Open runs call at rate for d (see Open) as a step of kind, reading the
// processes around it.
func (m *Meter) Open(kind string, rate int, d time.Duration, call Call) Step {
	m.Start()
	s := NewStep(kind, ModeOpen, float64(rate), 0, Open(rate, d, call))
	m.Stop(&s)
	return s
}

// Closed runs call with concurrency in flight for d (see Closed) as a step of
// kind, reading the processes around it.
func (m *Meter) Closed(kind string, concurrency int, d time.Duration, call Call) Step {
	m.Start()
	s := NewStep(kind, ModeClosed, 0, concurrency, Closed(concurrency, d, call))
	m.Stop(&s)
	return s
}
