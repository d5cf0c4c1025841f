package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Listen ports are taken below Linux's ephemeral range (32768 and up by
// default), so that no outgoing connection's source port can take a port
// while its server is down (a killed Kafka could then not listen again), and
// never twice in a run, so that two servers never get the same one.
const (
	minPort = 20000
	maxPort = 32000
)

var (
	portsMu sync.Mutex
	handed  = map[int]bool{}
)

// freePort returns a loopback port nobody listens on now and no earlier call
// returned.
func freePort() int {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 10000 {
		p := minPort + rand.IntN(maxPort-minPort)
		if handed[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		_ = l.Close() // only a free port was wanted
		handed[p] = true
		return p
	}
	panic("no free loopback port below the ephemeral range")
}

func freeAddr() string { return fmt.Sprintf("127.0.0.1:%d", freePort()) }

// portOpen is true when something accepts connections on addr.
func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close() // the dial was the test
	return true
}

// gone is true once pid has exited (a zombie counts as exited).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// waitGone waits up to d for pid to exit.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if gone(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return gone(pid)
}

// tailFile returns the last n lines of path.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 400 {
			lines[i] = l[:400] + "…"
		}
	}
	return strings.Join(lines, "\n")
}

// proc is one server process the test owns: started directly (exec) or found
// through a script's pid file and, after its first SIGKILL, started again from
// the command line, environment and directory it had (/proc/PID/{cmdline,
// environ,cwd}), so a JVM comes back exactly as scripts/hbase.sh or
// scripts/kafka.sh launched it, without the script restarting its siblings.
type proc struct {
	name    string
	logPath string
	// argv, env and dir are the command to (re)start; argv nil until known.
	argv []string
	env  []string
	dir  string
	// deathSig: a process started here dies with the test process.
	deathSig bool

	mu      sync.Mutex
	pid     int
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	killing bool          // the test is killing it: an exit now is expected
	crashes []string      // exits the test did not cause
	reg     *registry
}

// unexpectedExits lists the exits of the process the test did not cause.
func (p *proc) unexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.crashes)
}

// registry remembers every process of the test, for the cleanup and for a
// reaper that kills them should the test binary die without cleaning up (a
// panic, the go test timeout).
type registry struct {
	mu     sync.Mutex
	procs  []*proc
	file   string // the reaper's list: one pid a line
	marker string // a string in the command line of every process listed
}

func (r *registry) add(p *proc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.reg = r
	r.procs = append(r.procs, p)
}

// sync writes the live pids for the reaper.
func (r *registry) sync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, p := range r.procs {
		if pid := p.currentPID(); pid > 0 {
			fmt.Fprintln(&b, pid)
		}
	}
	_ = os.WriteFile(r.file+".tmp", []byte(b.String()), 0o644)
	_ = os.Rename(r.file+".tmp", r.file)
}

// startReaper starts a shell that outlives a crashed test binary and then
// SIGKILLs every listed pid whose command line still carries marker (so a
// reused pid is never hit).
func startReaper(t *testing.T, r *registry) {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
for p in $(cat %q 2>/dev/null); do
  if tr '\0' ' ' </proc/$p/cmdline 2>/dev/null | grep -qF -- %q; then kill -9 $p 2>/dev/null; fi
done`, os.Getpid(), r.file, r.marker)
	cmd := exec.Command("bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Logf("no reaper: %v", err)
		return
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

func (p *proc) currentPID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid > 0 && !gone(p.pid) {
		return p.pid
	}
	return 0
}

// adopt takes over a process a script started, reading what it needs to start
// it again.
func (p *proc) adopt(pid int) error {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	split := func(b []byte) []string {
		var out []string
		for _, s := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
			out = append(out, string(s))
		}
		return out
	}
	p.mu.Lock()
	p.argv, p.env, p.dir, p.pid = split(cmdline), split(environ), cwd, pid
	p.mu.Unlock()
	p.reg.sync()
	return nil
}

// start runs argv with env, appending its output to the log.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running (pid %d)", p.name, p.pid)
		}
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "\n===== chaos: start %s at %s =====\n", p.name, time.Now().Format(time.RFC3339Nano)); err != nil {
		_ = f.Close() // the write's error is the one to report
		return err
	}
	path, err := exec.LookPath(p.argv[0])
	if err != nil {
		_ = f.Close() // the error above is the one to report
		return err
	}
	cmd := exec.Command(path, p.argv[1:]...)
	cmd.Args = p.argv
	cmd.Env, cmd.Dir = p.env, p.dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if p.deathSig {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close() // the error above is the one to report
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	started := time.Now()
	go func() {
		err := cmd.Wait()
		_ = f.Close() // the process has exited: nothing more is written
		p.mu.Lock()
		if !p.killing {
			p.crashes = append(p.crashes, fmt.Sprintf("%s (pid %d) exited on its own at %s, %v after it started: %v",
				p.name, cmd.Process.Pid, time.Now().Format("15:04:05.000"), time.Since(started).Round(time.Millisecond), err))
		}
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done, p.pid, p.killing = cmd, done, cmd.Process.Pid, false
	go p.reg.sync()
	return nil
}

// kill9 SIGKILLs the process and waits until it is gone.
func (p *proc) kill9() error {
	p.mu.Lock()
	pid, done := p.pid, p.done
	p.killing = true
	p.mu.Unlock()
	if pid <= 0 || gone(pid) {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	if done != nil {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
		}
	} else if !waitGone(pid, 10*time.Second) {
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
	}
	return nil
}

// stop SIGKILLs whatever is running: the test's data is thrown away anyway.
func (p *proc) stop() {
	if p.currentPID() > 0 {
		_ = p.kill9()
	}
}

func (p *proc) alive() bool { return p.currentPID() > 0 }

// readPIDFile reads a script's pid file.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// copyInstall seeds a private script cache with what the script installed into
// the shared one (the resolved classpath, the compiled probe), so the private
// instance need not run Maven again. Missing files are left for the script.
func copyInstall(from, to string) {
	_ = os.MkdirAll(filepath.Join(to, "classes"), 0o755)
	for _, f := range []string{"classpath.txt", "classpath.stamp"} {
		if b, err := os.ReadFile(filepath.Join(from, f)); err == nil {
			_ = os.WriteFile(filepath.Join(to, f), b, 0o644)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(from, "classes"))
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(from, "classes", e.Name())); err == nil && !e.IsDir() {
			_ = os.WriteFile(filepath.Join(to, "classes", e.Name()), b, 0o644)
		}
	}
}

// runScript runs one of scripts/*.sh with env, its output to logPath.
func runScript(ctx context.Context, root, logPath string, env []string, args ...string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // the script's log: its exit status is the result
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = root, env, f, f
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w (log %s:\n%s)", strings.Join(args, " "), err, logPath, tailFile(logPath, 30))
	}
	return nil
}

// redisPing is true when a Redis server answers PING on addr.
func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	defer func() { _ = c.Close() }() // the reply is all that is wanted
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// baseEnviron is the test's environment without RECO_* (reco refuses any that
// is not a config key) and without the scripts' variables, so a private
// server gets exactly the ports this test gives it.
func baseEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "RECO_"), strings.HasPrefix(k, "HBASE_"), strings.HasPrefix(k, "KAFKA_"),
			strings.HasPrefix(k, "REDIS_"), k == "RECOSCRIPTS_CACHE":
			continue
		}
		env = append(env, kv)
	}
	return env
}
