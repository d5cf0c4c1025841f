package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// numChannels is how many channels the load reads: 0 (all channels) and 1..3.
const numChannels = 4

// profile sizes one run.
type profile struct {
	name      string
	readers   int
	load      loadConfig
	warmup    time.Duration // load before the "none" row's own span starts counting faults
	steady    time.Duration // the "none" row
	outage    time.Duration // how long a killed process stays dead
	tail      time.Duration // load after recovery, before the next fault
	soak      time.Duration // a last row at a steady rate, no faults (0: none)
	settle    time.Duration // after the load, before history is read
	capReco   time.Duration // the longest wait for recovery: a reco process, Redis
	capJVM    time.Duration // the longest wait for recovery: a JVM
	budget    time.Duration // the whole test, start-up included
	hbaseHeap string
}

func profileFor(mode string) profile {
	p := profile{
		name:    "short",
		readers: 300,
		load: loadConfig{
			clients: 50, articleNum: 10, pairShare: 0.15, pageShare: 0.10,
			think: 700 * time.Millisecond, callTimeout: 3 * time.Second,
		},
		warmup: 30 * time.Second, steady: 15 * time.Second,
		outage: 8 * time.Second, tail: 2 * time.Second, settle: 5 * time.Second,
		capReco: 12 * time.Second, capJVM: 100 * time.Second,
		hbaseHeap: "768m", budget: 6 * time.Minute,
	}
	if mode == "long" {
		p.name = "long"
		p.readers = 3000
		p.warmup, p.steady = 30*time.Second, 60*time.Second
		p.outage, p.tail = 2*time.Minute, 30*time.Second
		p.soak = 5 * time.Minute
		p.capReco, p.capJVM = 2*time.Minute, 4*time.Minute
		p.hbaseHeap = "1g"
		p.budget = 80 * time.Minute
		if v, err := time.ParseDuration(os.Getenv("RECOTEST_CHAOS_OUTAGE")); err == nil && v > 0 {
			p.outage = v
		}
		if v, err := time.ParseDuration(os.Getenv("RECOTEST_CHAOS_SOAK")); err == nil && v >= 0 {
			p.soak = v
		}
	}
	return p
}

// env is the chaos run: every server it owns and how to reach them.
type env struct {
	t       *testing.T
	root    string // the module root
	dir     string
	reg     *registry
	recoBin string
	keys    map[string]bool // the RECO_* variables reco knows

	redis          *proc
	redisAddr      string
	master, thrift *proc
	thriftAddr     string
	kafka          *proc
	kafkaAddr      string
	kafkaSkip      string // why the run has no Kafka row
	kafkaFailure   string // why the Kafka row could not run although asked for

	reco     map[string]*proc // by name: routing-a, routing-b, recocenter-a, recocenter-b, recall, …
	recoAddr map[string]string
	models   string
}

func TestChaos(t *testing.T) {
	mode := os.Getenv("RECOTEST_CHAOS")
	required := os.Getenv("RECOTEST_REQUIRE_INTEGRATION") == "1"
	if !required && mode == "" {
		t.Skip("the chaos test starts its own Redis, HBase and five reco processes for minutes: it runs under make test (RECOTEST_REQUIRE_INTEGRATION=1) or with RECOTEST_CHAOS=1|long")
	}
	prof := profileFor(mode)
	for _, bin := range []string{"redis-server", "java", "go", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("the chaos test needs %s: %v", bin, err)
		}
	}
	began := time.Now()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := &env{t: t, root: root, dir: dir, reco: map[string]*proc{}, recoAddr: map[string]string{}, models: filepath.Join(dir, "models")}
	e.reg = &registry{file: filepath.Join(dir, "pids"), marker: dir}
	startReaper(t, e.reg)
	t.Cleanup(e.cleanup)

	// Build reco, start Redis, HBase and Kafka at once: HBase takes longest.
	var g errgroup.Group
	g.Go(e.build)
	g.Go(e.startRedis)
	g.Go(e.startHBase(prof.hbaseHeap))
	g.Go(e.startKafka)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("servers up after %v: redis %s, hbase thrift2 %s, kafka %s", time.Since(began).Round(time.Second), e.redisAddr, e.thriftAddr, orNone(e.kafkaAddr, e.kafkaSkip+e.kafkaFailure))
	if err := e.readKeys(); err != nil {
		t.Fatal(err)
	}

	// Seed the fixture feed for every reader in channels 0..3.
	run := strconv.FormatInt(time.Now().UnixMilli(), 36)
	readers := make([]string, prof.readers)
	for i := range readers {
		readers[i] = fmt.Sprintf("chaos-%s-%d", run, i)
	}
	stores, closeStores := e.openStores()
	defer func() { _ = closeStores() }()
	seedStart := time.Now()
	if err := seed(stores, e.models, readers); err != nil {
		t.Fatalf("seed: %v", err)
	}
	t.Logf("seeded %d readers in channels 0..3 in %v", len(readers), time.Since(seedStart).Round(100*time.Millisecond))

	// The five services, routing twice.
	e.startReco()
	cc := e.routingConn()

	rec := &recorder{epoch: time.Now()}
	ld, err := newLoad(cc, prof.load, readers, rec)
	if err != nil {
		t.Fatal(err)
	}
	ld.start()
	t.Logf("load started at %s (t=0)", rec.epoch.Format("15:04:05.000"))
	loadStopped := false
	stopLoad := func() {
		if !loadStopped {
			loadStopped = true
			ld.halt()
		}
	}
	defer stopLoad()

	// HBase answers when a fresh connection reads a row: the test's own
	// long-lived handle has connection pools and breakers of its own.
	hbaseUp := func() bool { return e.hbaseAnswers(2 * time.Second) }
	recoUp := func(name string) func() bool {
		return func() bool { return e.serving(name) }
	}
	type fault struct {
		name      string
		p         *proc
		ready     func() bool
		cap       time.Duration
		addr      string // a routing process's address
		skip      string
		failure   string
		onRestart func() error
		order     int
		// emptiesQueues: the fault loses what tier 1 held (an empty Redis).
		emptiesQueues bool
	}
	faults := []fault{
		{name: "redis SIGKILL (empty)", p: e.redis, ready: func() bool { return redisPing(e.redisAddr) }, cap: prof.capReco,
			onRestart: func() error { return restoreLists(stores, e.models) }, emptiesQueues: true},
		{name: "thrift2 SIGKILL", p: e.thrift, ready: hbaseUp, cap: prof.capJVM},
		{name: "hbase JVM SIGKILL", p: e.master, ready: hbaseUp, cap: prof.capJVM},
		{name: "kafka SIGKILL", p: e.kafka, ready: func() bool { return portOpen(e.kafkaAddr) }, cap: prof.capJVM, skip: e.kafkaSkip, failure: e.kafkaFailure},
		{name: "routing SIGKILL", p: e.reco["routing-a"], ready: recoUp("routing-a"), cap: prof.capReco, addr: e.recoAddr["routing-a"]},
		{name: "recocenter SIGKILL", p: e.reco["recocenter-a"], ready: recoUp("recocenter-a"), cap: prof.capReco},
	}
	for _, s := range []string{app.Recall, app.Sort, app.Cache} {
		faults = append(faults, fault{name: s + " SIGKILL", p: e.reco[s], ready: recoUp(s), cap: prof.capReco})
	}

	// Faults run in table order except the HBase JVM, last: its recovery
	// (WAL split, region reassignment) takes longest and would leak into the
	// rows after it.
	for i := range faults {
		faults[i].order = i + 2
	}
	for i, f := range faults {
		if f.name == "hbase JVM SIGKILL" {
			faults = append(append(faults[:i:i], faults[i+1:]...), f)
			break
		}
	}

	warm := &phase{name: "warm-up", start: 0, ran: true, warmup: true, order: 0}
	phases := []*phase{warm}
	time.Sleep(prof.warmup)
	none := &phase{name: "none", start: rec.since(), ran: true, order: 1}
	warm.end = none.start
	phases = append(phases, none)
	time.Sleep(prof.steady)
	recovered := true
	for _, f := range faults {
		ph := &phase{name: f.name, fault: true, skipped: f.skip, failure: f.failure, killedAddr: f.addr, order: f.order, emptiesQueues: f.emptiesQueues}
		now := rec.since()
		phases[len(phases)-1].end = now
		ph.start = now
		phases = append(phases, ph)
		switch {
		case f.skip != "", f.failure != "":
			continue
		case f.p == nil:
			ph.failure = "no process to kill"
			continue
		}
		ph.dirty = !recovered
		ph.kill = rec.since()
		if err := f.p.kill9(); err != nil {
			ph.failure = err.Error()
			continue
		}
		ph.ran, ph.killed = true, rec.since()
		t.Logf("t=%v: SIGKILL %s", ph.kill.Round(time.Millisecond), f.name)
		time.Sleep(prof.outage)
		ph.restart = rec.since()
		if err := f.p.start(); err != nil {
			ph.failure = "restart: " + err.Error()
			recovered = false
			continue
		}
		// Wait until it answers its probe and the clients saw a clean
		// stretch, at most the fault's cap and never past the run's budget.
		limit := f.cap
		if left := prof.budget - time.Since(began) - prof.settle - 20*time.Second; left < limit {
			limit = max(left, 10*time.Second)
		}
		deadline := time.Now().Add(limit)
		recovered = false
		var after sync.WaitGroup
		for time.Now().Before(deadline) {
			if ph.up == 0 && f.ready() {
				ph.up = rec.since()
				if f.onRestart != nil {
					after.Add(1)
					go func() {
						defer after.Done()
						if err := f.onRestart(); err != nil {
							t.Logf("%s: after the restart: %v", f.name, err)
						}
					}()
				}
			}
			now := rec.since()
			if ph.up > 0 && now-ph.restart > 1500*time.Millisecond && rec.errorFreeSince(now-1500*time.Millisecond, 5) {
				recovered = true
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		after.Wait()
		if ph.up == 0 && f.ready() {
			ph.up = rec.since()
		}
		t.Logf("t=%v: %s restarted at t=%v, answered its probe at t=%v, clients clean: %v", rec.since().Round(time.Millisecond), f.name,
			ph.restart.Round(time.Millisecond), ph.up.Round(time.Millisecond), recovered)
		// The row's dark pages are judged from maxRecovery after the server
		// answered: keep the load on for darkWindow of them.
		tail := prof.tail
		if ph.up > 0 {
			tail = max(tail, ph.up+maxRecovery+darkWindow-rec.since())
		}
		time.Sleep(tail)
	}
	if prof.soak > 0 {
		ph := &phase{name: "soak", start: rec.since(), ran: true}
		phases[len(phases)-1].end = ph.start
		phases = append(phases, ph)
		time.Sleep(prof.soak)
	}
	stopLoad()
	phases[len(phases)-1].end = rec.since() + time.Millisecond // after every call's start
	calls := rec.snapshot()
	t.Logf("load done after %v: %d calls", time.Since(began).Round(time.Second), len(calls))

	// Every dependency was restarted; wait until HBase answers (the last
	// fault is its JVM), let the served log's applier catch up, then read
	// every reader's history.
	hbaseBack := time.Now()
	for !hbaseUp() && time.Since(hbaseBack) < time.Minute {
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("HBase answered %v after the load stopped", time.Since(hbaseBack).Round(100*time.Millisecond))
	time.Sleep(prof.settle)
	history, err := e.readHistory(calls, readers, time.Minute)
	if err != nil {
		t.Errorf("reading history_recommend after the run: %v", err)
	}
	if n := unverified(calls, history); n > 0 {
		t.Errorf("%d served ids could not be checked against history_recommend: their reader's history was unreadable", n)
	}

	f := &findings{inChannel: make([]int, len(phases)), ch0Then: make([]int, len(phases)), missing: make([]int, len(phases)),
		dark: make([]int, len(phases)), darkAfter: make([]int, len(phases)), refreshesAfter: make([]int, len(phases))}
	checkRepeats(calls, phases, f)
	checkHistory(calls, phases, history, f)
	checkDark(calls, phases, int(prof.load.articleNum), config.Default().Cache.Tier1Size, fixture.Servable, f)
	rows := tabulate(calls, phases, f)

	t.Logf("chaos (%s): %d readers, %d clients, article_num %d, outage %v per fault; routing and reco-center run twice (routing behind the clients' round robin, reco-center behind routing's ring hash) and their rows kill one of the two",
		prof.name, prof.readers, prof.load.clients, prof.load.articleNum, prof.outage)
	for _, line := range table(phases, rows) {
		t.Log(line)
	}
	for _, ex := range f.examples {
		t.Log("  " + ex)
	}
	for i, ph := range phases {
		for _, m := range topErrors(calls, phases, i, 3) {
			t.Logf("  %s: %s", ph.name, m)
		}
	}
	for i, ph := range phases {
		for _, v := range verdicts(ph, rows[i]) {
			t.Errorf("row %q: %s", ph.name, v)
		}
	}
	// A process that died without being killed is a failure of its own,
	// whatever the rows say.
	for _, p := range e.reg.procs {
		for _, c := range p.unexpectedExits() {
			t.Errorf("%s", c)
		}
	}
	t.Logf("total %v", time.Since(began).Round(time.Second))
}

func orNone(s, why string) string {
	if s == "" {
		return "none (" + why + ")"
	}
	return s
}

// cleanup kills every process, keeps the logs when RECOTEST_CHAOS_LOGS asks
// and, when the test failed, prints the end of each log.
func (e *env) cleanup() {
	e.reg.mu.Lock()
	procs := slices.Clone(e.reg.procs)
	e.reg.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
	if keep := os.Getenv("RECOTEST_CHAOS_LOGS"); keep != "" {
		// The run's directory goes with the test: keep its logs for a look,
		// passed or not (a passing run's figures may still want explaining).
		dst := filepath.Join(keep, filepath.Base(filepath.Dir(e.dir)))
		if err := os.CopyFS(dst, os.DirFS(filepath.Join(e.dir, "logs"))); err != nil {
			e.t.Logf("keeping the logs in %s: %v", dst, err)
		} else {
			e.t.Logf("the processes' logs are kept in %s", dst)
		}
	}
	if !e.t.Failed() {
		return
	}
	for _, p := range procs {
		e.t.Logf("----- last lines of %s (%s) -----\n%s", p.name, p.logPath, tailFile(p.logPath, 15))
	}
	for _, f := range []string{"hbase.sh.log", "kafka.sh.log", "build.log"} {
		if _, err := os.Stat(filepath.Join(e.dir, f)); err == nil {
			e.t.Logf("----- last lines of %s -----\n%s", f, tailFile(filepath.Join(e.dir, f), 10))
		}
	}
}

func (e *env) newProc(name string, deathSig bool) *proc {
	p := &proc{name: name, logPath: filepath.Join(e.dir, "logs", name+".log"), deathSig: deathSig}
	_ = os.MkdirAll(filepath.Dir(p.logPath), 0o755)
	e.reg.add(p)
	return p
}

// build compiles this tree's reco, unless RECOTEST_CHAOS_RECO_BIN names a
// binary to test instead.
func (e *env) build() error {
	if bin := os.Getenv("RECOTEST_CHAOS_RECO_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("RECOTEST_CHAOS_RECO_BIN: %w", err)
		}
		e.recoBin = abs
		return nil
	}
	e.recoBin = filepath.Join(e.dir, "bin", "reco")
	cmd := exec.Command("go", "build", "-o", e.recoBin, "./cmd/reco")
	cmd.Dir = e.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.WriteFile(filepath.Join(e.dir, "build.log"), out, 0o644)
		return fmt.Errorf("go build ./cmd/reco: %v\n%s", err, out)
	}
	return nil
}

// startRedis runs a private redis-server without persistence: a restart is
// an empty Redis.
func (e *env) startRedis() error {
	port := freePort()
	e.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	rdir := filepath.Join(e.dir, "redis")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	e.redis = e.newProc("redis", true)
	e.redis.argv = []string{"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", rdir, "--logfile", ""}
	e.redis.env = baseEnviron()
	if err := e.redis.start(); err != nil {
		return err
	}
	for range 100 {
		if redisPing(e.redisAddr) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s did not answer:\n%s", e.redisAddr, tailFile(e.redis.logPath, 20))
}

// sharedCache is where the scripts installed their jars for the shared servers.
func (e *env) sharedCache() string {
	if c := os.Getenv("RECOSCRIPTS_CACHE"); c != "" {
		if filepath.IsAbs(c) {
			return c
		}
		return filepath.Join(e.root, c)
	}
	return filepath.Join(e.root, ".cache")
}

// startHBase starts a private standalone HBase + Thrift2 gateway with
// scripts/hbase.sh on free ports under its own cache directory: the shared one
// serves the other test packages and is never touched.
func (e *env) startHBase(heap string) func() error {
	return func() error {
		cache := filepath.Join(e.dir, "hbcache")
		copyInstall(filepath.Join(e.sharedCache(), "hbase"), filepath.Join(cache, "hbase"))
		thriftPort := freePort()
		envv := append(baseEnviron(),
			"RECOSCRIPTS_CACHE="+cache,
			"HBASE_CDS=0", // a SIGKILLed JVM never writes its archive
			"HBASE_HEAP="+heap,
			"HBASE_START_TIMEOUT=200",
			fmt.Sprintf("HBASE_ZK_PORT=%d", freePort()),
			fmt.Sprintf("HBASE_MASTER_PORT=%d", freePort()),
			fmt.Sprintf("HBASE_MASTER_INFO_PORT=%d", freePort()),
			fmt.Sprintf("HBASE_RS_PORT=%d", freePort()),
			fmt.Sprintf("HBASE_RS_INFO_PORT=%d", freePort()),
			fmt.Sprintf("HBASE_THRIFT_PORT=%d", thriftPort),
			fmt.Sprintf("HBASE_THRIFT_INFO_PORT=%d", freePort()),
		)
		e.master, e.thrift = e.newProc("hbase-master", false), e.newProc("hbase-thrift", false)
		ctx, cancel := context.WithTimeout(context.Background(), 230*time.Second)
		defer cancel()
		err := runScript(ctx, e.root, filepath.Join(e.dir, "hbase.sh.log"), envv, "scripts/hbase.sh", "start")
		// Adopt whatever started, so the cleanup kills it even on failure.
		for name, p := range map[string]*proc{"master": e.master, "thrift": e.thrift} {
			run := filepath.Join(cache, "hbase", "run", name+".pid")
			p.logPath = filepath.Join(cache, "hbase", "logs", name+".log")
			if pid, perr := readPIDFile(run); perr == nil && !gone(pid) {
				if aerr := p.adopt(pid); aerr != nil && err == nil {
					err = aerr
				}
			}
		}
		if err != nil {
			return err
		}
		e.thriftAddr = fmt.Sprintf("127.0.0.1:%d", thriftPort)
		return nil
	}
}

// startKafka starts a private Kafka broker with scripts/kafka.sh when the run
// has Kafka (RECOTEST_KAFKA_ADDR); without it the Kafka row is skipped, with
// the reason in the table.
func (e *env) startKafka() error {
	if os.Getenv("RECOTEST_KAFKA_ADDR") == "" {
		e.kafkaSkip = "RECOTEST_KAFKA_ADDR is unset: this run has no Kafka (each process uses its own embedded log)"
		return nil
	}
	script := filepath.Join(e.root, "scripts", "kafka.sh")
	if _, err := os.Stat(script); err != nil {
		e.kafkaFailure = "RECOTEST_KAFKA_ADDR is set but scripts/kafka.sh is missing"
		return nil
	}
	cache := filepath.Join(e.dir, "kcache")
	copyInstall(filepath.Join(e.sharedCache(), "kafka"), filepath.Join(cache, "kafka"))
	port := freePort()
	envv := append(baseEnviron(), "RECOSCRIPTS_CACHE="+cache, "KAFKA_CDS=0",
		fmt.Sprintf("KAFKA_PORT=%d", port), fmt.Sprintf("KAFKA_CONTROLLER_PORT=%d", freePort()))
	e.kafka = e.newProc("kafka", false)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	err := runScript(ctx, e.root, filepath.Join(e.dir, "kafka.sh.log"), envv, "scripts/kafka.sh", "start")
	e.kafka.logPath = filepath.Join(cache, "kafka", "logs", "kafka.log")
	if pid, perr := readPIDFile(filepath.Join(cache, "kafka", "run", "kafka.pid")); perr == nil && !gone(pid) {
		if aerr := e.kafka.adopt(pid); aerr != nil && err == nil {
			err = aerr
		}
	}
	if err != nil {
		e.kafkaFailure = "could not start a private Kafka: " + err.Error()
		return nil
	}
	e.kafkaAddr = fmt.Sprintf("127.0.0.1:%d", port)
	return nil
}

// readKeys runs `reco config env` for the variables this build knows.
func (e *env) readKeys() error {
	cmd := exec.Command(e.recoBin, "config", "env")
	cmd.Env = baseEnviron()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("reco config env: %v", err)
	}
	e.keys = map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, config.EnvPrefix) {
				e.keys[f] = true
			}
		}
	}
	for _, k := range []string{"RECO_SERVER_GRPC_ADDR", "RECO_STORAGE_HBASE_THRIFT_ADDR", "RECO_STORAGE_REDIS_ADDRS"} {
		if !e.keys[k] {
			return fmt.Errorf("reco config env does not list %s:\n%s", k, out)
		}
	}
	if e.kafkaAddr != "" && !e.keys["RECO_STORAGE_LOG_BACKEND"] {
		e.kafkaFailure = "the run has Kafka but reco has no RECO_STORAGE_LOG_BACKEND key yet"
	}
	return nil
}

// storageEnv points a process at the private HBase, Redis and log.
func (e *env) storageEnv(name string) []string {
	env := []string{
		"RECO_STORAGE_TABLES=hbase", "RECO_STORAGE_HBASE_THRIFT_ADDR=" + e.thriftAddr,
		"RECO_STORAGE_SETS=redis", "RECO_STORAGE_REDIS_ADDRS=" + e.redisAddr,
	}
	if !e.keys["RECO_STORAGE_LOG_BACKEND"] {
		return env
	}
	if e.kafkaAddr != "" && e.kafkaFailure == "" {
		env = append(env, "RECO_STORAGE_LOG_BACKEND=kafka")
		if e.keys["RECO_STORAGE_LOG_KAFKA_SPILL_DIR"] {
			env = append(env, "RECO_STORAGE_LOG_KAFKA_SPILL_DIR="+filepath.Join(e.dir, "spill", name))
		}
		for k := range e.keys {
			if strings.HasPrefix(k, "RECO_STORAGE_LOG_") && strings.HasSuffix(k, "_BROKERS") {
				env = append(env, k+"="+e.kafkaAddr)
			}
		}
		return env
	}
	// An embedded log of its own per process.
	for k := range e.keys {
		if strings.HasPrefix(k, "RECO_STORAGE_LOG_") && (strings.HasSuffix(k, "_DIR") || strings.HasSuffix(k, "_PATH")) {
			env = append(env, k+"="+filepath.Join(e.dir, "eventlog", name))
		}
	}
	return env
}

// openStores opens the test's own handle on the private HBase and Redis, with
// a patient HBase timeout: the test's writes and reads are not under test.
func (e *env) openStores() (app.Stores, func() error) {
	env := append(e.storageEnv("test"), "RECO_STORAGE_HBASE_TIMEOUT=10s")
	if e.keys["RECO_STORAGE_HBASE_DIAL_TIMEOUT"] {
		env = append(env, "RECO_STORAGE_HBASE_DIAL_TIMEOUT=5s")
	}
	cfg, err := config.Load("", env)
	if err != nil {
		e.t.Fatal(err)
	}
	st, closeStores, err := app.OpenStores(context.Background(), cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Tables.Bootstrap(ctx); err != nil {
		e.t.Fatalf("bootstrap the private HBase: %v", err)
	}
	return st, closeStores
}

// restoreLists puts the channels' hot and new lists back into a Redis that
// came back empty (it answers already), as the offline build (which writes them)
// would: they are catalogue data, not the readers' state. Tier 1, the seen
// sets and everything else the feed keeps in Redis stay lost.
func restoreLists(st app.Stores, models string) error {
	time.Sleep(time.Second) // the processes meet the empty Redis first
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ch := range []int32{1, 2, 3, 0} {
		if err := fixture.SeedChannel(ctx, st.Tables, st.Sets, models, ch); err != nil {
			return err
		}
	}
	return nil
}

// seed writes the fixture feed of channels 0..3 for readers, in parallel
// batches.
func seed(st app.Stores, models string, readers []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Seeding is idempotent: a write that timed out on a busy machine is
	// written again.
	seedChannel := func(ch int32, users ...string) error {
		var err error
		for range 4 {
			if err = fixture.SeedChannel(ctx, st.Tables, st.Sets, models, ch, users...); err == nil || ctx.Err() != nil {
				return err
			}
			time.Sleep(time.Second)
		}
		return err
	}
	for _, ch := range []int32{1, 2, 3, 0} {
		// The article side and the channel lists once per channel, then the
		// readers' recall in batches.
		if err := seedChannel(ch); err != nil {
			return err
		}
	}
	var g errgroup.Group
	g.SetLimit(4)
	const batch = 50
	for i := 0; i < len(readers); i += batch {
		users := readers[i:min(i+batch, len(readers))]
		g.Go(func() error {
			for _, ch := range []int32{1, 2, 3, 0} {
				if err := seedChannel(ch, users...); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// startReco starts the five services, routing and reco-center twice.
func (e *env) startReco() {
	names := []string{"routing-a", "routing-b", "recocenter-a", "recocenter-b", app.Recall, app.Sort, app.Cache}
	for _, n := range names {
		e.recoAddr[n] = freeAddr()
	}
	peers := []string{
		"RECO_CLIENTS_RECOCENTER_ADDR=" + e.recoAddr["recocenter-a"] + "," + e.recoAddr["recocenter-b"],
		"RECO_CLIENTS_RECALL_ADDR=" + e.recoAddr[app.Recall],
		"RECO_CLIENTS_SORT_ADDR=" + e.recoAddr[app.Sort],
		"RECO_CLIENTS_CACHE_ADDR=" + e.recoAddr[app.Cache],
	}
	for _, n := range names {
		target := strings.TrimSuffix(strings.TrimSuffix(n, "-a"), "-b")
		env := append(baseEnviron(), "RECO_SERVER_GRPC_ADDR="+e.recoAddr[n], "RECO_SORT_MODEL_DIR="+e.models, "RECO_LOG_LEVEL=warn")
		// Every other listener of this build on a free port of its own.
		for k := range e.keys {
			if strings.HasPrefix(k, "RECO_SERVER_") && strings.HasSuffix(k, "_ADDR") && k != "RECO_SERVER_GRPC_ADDR" {
				env = append(env, k+"="+freeAddr())
			}
		}
		env = append(append(env, peers...), e.storageEnv(n)...)
		p := e.newProc(n, true)
		p.argv = []string{e.recoBin, "serve", "--target=" + target}
		p.env, p.dir = env, e.dir
		if err := p.start(); err != nil {
			e.t.Fatal(err)
		}
		e.reco[n] = p
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for !e.serving(n) {
			if time.Now().After(deadline) || !e.reco[n].alive() {
				e.t.Fatalf("%s never became SERVING on %s; log:\n%s", n, e.recoAddr[n], tailFile(e.reco[n].logPath, 30))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

var (
	connMu sync.Mutex
	conns  = map[string]*grpc.ClientConn{}
)

// serving is true when the process answers a health check with SERVING.
func (e *env) serving(name string) bool {
	connMu.Lock()
	cc := conns[name]
	if cc == nil {
		var err error
		cc, err = grpc.NewClient(e.recoAddr[name], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			connMu.Unlock()
			return false
		}
		conns[name] = cc
		e.t.Cleanup(func() { cc.Close() })
	}
	connMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// routingConn is the clients' connection: round robin over both routing
// processes, as a client-side balancer would.
func (e *env) routingConn() *grpc.ClientConn {
	r := manual.NewBuilderWithScheme("chaos")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: e.recoAddr["routing-a"]}, {Addr: e.recoAddr["routing-b"]}}})
	cc, err := grpc.NewClient("chaos:///routing",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cc.Close() })
	return cc
}

// hbaseAnswers opens a fresh connection to the private HBase and reads a row.
func (e *env) hbaseAnswers(timeout time.Duration) bool {
	cfg, err := config.Load("", append(e.storageEnv("probe"), "RECO_STORAGE_HBASE_TIMEOUT="+timeout.String()))
	if err != nil {
		return false
	}
	st, closeStores, err := app.OpenStores(context.Background(), cfg.Storage, app.TablesRole, nil, nil)
	if err != nil {
		return false
	}
	defer func() { _ = closeStores() }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = st.Tables.Newest(ctx, "chaos-probe", 1)
	return err == nil
}

// unverified counts the served ids whose reader's history could not be read.
func unverified(calls []call, history map[rc]map[int64]bool) int {
	n := 0
	for i := range calls {
		if c := &calls[i]; c.refresh {
			if _, ok := history[rc{c.reader, c.channel}]; !ok {
				n += len(c.ids)
			}
		}
	}
	return n
}

// readHistory reads, with a fresh connection, every id history_recommend holds
// for each reader and channel that had an OK refresh. Readers with served ids
// missing are read again until patience runs out: the served log's applier may
// still be catching up.
func (e *env) readHistory(calls []call, readers []string, patience time.Duration) (map[rc]map[int64]bool, error) {
	st, closeStores := e.openStores()
	defer func() { _ = closeStores() }()
	want := map[rc]map[int64]bool{}
	for _, c := range calls {
		if c.refresh && len(c.ids) > 0 {
			k := rc{c.reader, c.channel}
			if want[k] == nil {
				want[k] = map[int64]bool{}
			}
			for _, id := range c.ids {
				want[k][id] = true
			}
		}
	}
	history := map[rc]map[int64]bool{}
	var mu sync.Mutex
	pending := make([]rc, 0, len(want))
	for k := range want {
		pending = append(pending, k)
	}
	deadline := time.Now().Add(patience)
	var lastErr error
	for len(pending) > 0 {
		var g errgroup.Group
		g.SetLimit(8)
		var again []rc
		for _, k := range pending {
			g.Go(func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				seen, err := st.Tables.Seen(ctx, readers[k.reader], []int32{k.channel})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					lastErr = fmt.Errorf("Seen(%s, %d): %w", readers[k.reader], k.channel, err)
					again = append(again, k)
					return nil
				}
				history[k] = seen
				for id := range want[k] {
					if !seen[id] {
						again = append(again, k)
						break
					}
				}
				return nil
			})
		}
		_ = g.Wait()
		pending = again
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if lastErr != nil && len(pending) > 0 {
		return history, lastErr
	}
	return history, nil
}
