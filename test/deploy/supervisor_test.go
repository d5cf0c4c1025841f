package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/internal/originalclient"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// iniSection is one [section] of a supervisord configuration file.
type iniSection map[string]string

// parseINI reads supervisord's dialect: [section], key = value (or key=value),
// comments from ';' or '#' at the start of a line or after whitespace,
// indented continuation lines.
func parseINI(b []byte) (map[string]iniSection, []string, error) {
	sections := map[string]iniSection{}
	var order []string
	var cur iniSection
	var lastKey string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if i := strings.Index(line, " ;"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "" || line[0] == ';' || line[0] == '#':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			name := line[1 : len(line)-1]
			if _, dup := sections[name]; dup {
				return nil, nil, fmt.Errorf("line %d: section [%s] twice", n, name)
			}
			cur = iniSection{}
			sections[name] = cur
			order = append(order, name)
		case cur == nil:
			return nil, nil, fmt.Errorf("line %d: %q outside a section", n, raw)
		case raw[0] == ' ' || raw[0] == '\t':
			cur[lastKey] += "\n" + line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, nil, fmt.Errorf("line %d: %q is not key=value", n, raw)
			}
			lastKey = strings.TrimSpace(k)
			if _, dup := cur[lastKey]; dup {
				return nil, nil, fmt.Errorf("line %d: %s set twice", n, lastKey)
			}
			cur[lastKey] = strings.TrimSpace(v)
		}
	}
	return sections, order, sc.Err()
}

// supervisorEnv parses a program's environment= value: KEY="value",KEY2=value.
func supervisorEnv(s string) (map[string]string, error) {
	env := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not KEY=value", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quote in %q", rest)
			}
			v, rest = rest[1:end+1], rest[end+2:]
		} else if i := strings.IndexByte(rest, ','); i >= 0 {
			v, rest = rest[:i], rest[i:]
		} else {
			v, rest = rest, ""
		}
		if rest != "" && rest[0] != ',' {
			return nil, fmt.Errorf("%q: expected a comma after %s's value", rest, k)
		}
		env[strings.TrimSpace(k)] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return env, nil
}

func supervisorFile(t *testing.T, name string) map[string]iniSection {
	t.Helper()
	sections, _, err := parseINI(readRepoFile(t, "deploy/supervisor", name))
	if err != nil {
		t.Fatalf("deploy/supervisor/%s: %v", name, err)
	}
	return sections
}

// recoYAML is the path the programs read their shared configuration from.
const recoYAML = "/etc/reco/reco.yaml"

// supervisedConfig loads the configuration one program runs with: reco.yaml,
// then its environment; the strategies file is read from the repository.
func supervisedConfig(t *testing.T, where string, env map[string]string) config.Config {
	t.Helper()
	var raw struct {
		Routing struct {
			StrategiesFile string `yaml:"strategies_file"`
		} `yaml:"routing"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, "deploy/supervisor/reco.yaml"), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Routing.StrategiesFile != "/etc/reco/strategies.yaml" {
		t.Errorf("reco.yaml: routing.strategies_file %q, want /etc/reco/strategies.yaml (README copies deploy/strategies.yaml there)", raw.Routing.StrategiesFile)
	}
	keys := envKeys()
	environ := []string{"RECO_ROUTING_STRATEGIES_FILE=" + repoPath("deploy/strategies.yaml")}
	for k, v := range env {
		if _, ok := keys[k]; !ok {
			t.Errorf("%s: %s is not a configuration variable (see `reco config env`)", where, k)
		}
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(repoPath("deploy/supervisor/reco.yaml"), environ)
	if err != nil {
		t.Fatalf("%s: the configuration does not load: %v", where, err)
	}
	return cfg
}

func TestSupervisorConfig(t *testing.T) {
	conf := supervisorFile(t, "reco.conf")
	var programs []string
	for _, name := range services {
		programs = append(programs, "reco-"+name)
	}
	if got := strings.Split(conf["group:reco"]["programs"], ","); !slices.Equal(sortedCopy(got), sortedCopy(programs)) {
		t.Errorf("[group:reco] programs=%v, want %v", got, programs)
	}
	grpcAddr := map[string]string{}
	priority := map[string]int{}
	for _, name := range services {
		where := "[program:reco-" + name + "]"
		p, ok := conf["program:reco-"+name]
		if !ok {
			t.Errorf("reco.conf has no %s", where)
			continue
		}
		if got := strings.Fields(p["command"]); !slices.Equal(got, []string{"/usr/local/bin/reco", "serve", "--target=" + name, "--config", recoYAML}) {
			t.Errorf("%s command=%q, want /usr/local/bin/reco serve --target=%s --config %s", where, p["command"], name, recoYAML)
		}
		env, err := supervisorEnv(p["environment"])
		if err != nil {
			t.Errorf("%s environment: %v", where, err)
		}
		cfg := supervisedConfig(t, where, env)
		grpcAddr[name] = cfg.Server.GRPCAddr
		if cfg.Storage.Tables != "hbase" || cfg.Storage.Sets != "redis" {
			t.Errorf("%s: storage %s/%s, want hbase/redis", where, cfg.Storage.Tables, cfg.Storage.Sets)
		}
		for _, k := range []string{"RECO_SERVER_GRPC_ADDR", "RECO_SERVER_METRICS_ADDR"} {
			if env[k] == "" {
				t.Errorf("%s: its environment does not set %s", where, k)
			}
		}
		stopWait, err := strconv.Atoi(p["stopwaitsecs"])
		if err != nil || time.Duration(stopWait)*time.Second <= stopTime(cfg) {
			t.Errorf("%s stopwaitsecs=%s must exceed the lame duck (%v), the drain (%v) and the metrics shutdown (1s)", where, p["stopwaitsecs"], cfg.Server.LameDuck, cfg.Server.DrainTimeout)
		}
		for k, want := range map[string]string{"stopsignal": "TERM", "autostart": "true", "autorestart": "true", "redirect_stderr": "true"} {
			if p[k] != want {
				t.Errorf("%s %s=%q, want %s", where, k, p[k], want)
			}
		}
		if !strings.HasPrefix(p["stdout_logfile"], "/var/log/reco/") || p["stdout_logfile_maxbytes"] == "" || p["stdout_logfile_backups"] == "" || p["stdout_logfile_backups"] == "0" {
			t.Errorf("%s logs to %q (max %q, backups %q), want rotated files under /var/log/reco", where, p["stdout_logfile"], p["stdout_logfile_maxbytes"], p["stdout_logfile_backups"])
		}
		if priority[name], err = strconv.Atoi(p["priority"]); err != nil {
			t.Errorf("%s priority=%q: %v", where, p["priority"], err)
		}
	}
	// Peers start first (lower priority) and stop last; every program finds its
	// peers where they listen.
	for _, name := range services {
		cfg := supervisedConfig(t, name, nil)
		for _, peer := range peers[name] {
			if priority[peer] >= priority[name] {
				t.Errorf("reco-%s (priority %d) starts before its peer reco-%s (%d)", name, priority[name], peer, priority[peer])
			}
		}
		for peer, addr := range map[string]string{"recocenter": cfg.Clients.RecoCenter.Addr, "recall": cfg.Clients.Recall.Addr, "sort": cfg.Clients.Sort.Addr, "cache": cfg.Clients.Cache.Addr} {
			if addr != grpcAddr[peer] {
				t.Errorf("reco.yaml clients.%s.addr = %s, but reco-%s listens on %s", peer, addr, peer, grpcAddr[peer])
			}
		}
	}

	t.Run("storage programs", func(t *testing.T) {
		st := supervisorFile(t, "storage.conf")
		cfg := supervisedConfig(t, "storage", nil)
		hb := st["program:hbase"]
		if hb["command"] != "/opt/toutiao-reco/scripts/hbase.sh run" {
			t.Errorf("[program:hbase] command=%q, want scripts/hbase.sh run", hb["command"])
		}
		if !bytes.Contains(readRepoFile(t, "scripts/hbase.sh"), []byte("  run) run ;;")) {
			t.Error("scripts/hbase.sh has no run subcommand")
		}
		env, err := supervisorEnv(hb["environment"])
		if err != nil {
			t.Fatal(err)
		}
		if _, p := hostPort(t, "thrift", cfg.Storage.HBase.ThriftAddr); env["HBASE_THRIFT_PORT"] != p {
			t.Errorf("hbase serves Thrift2 on %q, reco.yaml expects %s", env["HBASE_THRIFT_PORT"], cfg.Storage.HBase.ThriftAddr)
		}
		if s, _ := strconv.Atoi(hb["stopwaitsecs"]); s < 60 || hb["stopsignal"] != "TERM" {
			t.Errorf("[program:hbase] stopsignal=%s stopwaitsecs=%s: HBase needs TERM and a minute to flush", hb["stopsignal"], hb["stopwaitsecs"])
		}
		rd := strings.Fields(st["program:redis"]["command"])
		if len(rd) == 0 || rd[0] != "/usr/bin/redis-server" || !slices.Contains(rd, "--daemonize") {
			t.Errorf("[program:redis] command=%q, want redis-server in the foreground", rd)
		}
		if i := slices.Index(rd, "--port"); i < 0 || "127.0.0.1:"+rd[i+1] != cfg.Storage.Redis.Addrs[0] {
			t.Errorf("[program:redis] %q does not listen where reco.yaml expects %v", rd, cfg.Storage.Redis.Addrs)
		}
	})
}

// integration fails the test when RECOTEST_REQUIRE_INTEGRATION=1 (make test starts
// every dependency, so a missing one is a broken setup) and skips it otherwise.
func integration(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("RECOTEST_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf(format+" (RECOTEST_REQUIRE_INTEGRATION=1: this test must run)", args...)
	}
	t.Skipf(format, args...)
}

// supervisorBinaries finds supervisord and supervisorctl, installing Debian's
// supervisor package when they are missing and the test runs as root.
func supervisorBinaries(t *testing.T) (string, string) {
	t.Helper()
	if _, err := exec.LookPath("supervisord"); err != nil && os.Geteuid() == 0 {
		install := func() ([]byte, error) {
			cmd := exec.Command("apt-get", "install", "-y", "-qq", "--no-install-recommends", "supervisor")
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			return cmd.CombinedOutput()
		}
		t.Log("installing Debian's supervisor package")
		if out, err := install(); err != nil {
			if out, err := exec.Command("apt-get", "update", "-qq").CombinedOutput(); err != nil {
				t.Logf("apt-get update: %v\n%s", err, out)
			}
			if out2, err := install(); err != nil {
				t.Logf("apt-get install supervisor: %v\n%s\n%s", err, out, out2)
			}
		}
	}
	d, err1 := exec.LookPath("supervisord")
	c, err2 := exec.LookPath("supervisorctl")
	if err := errors.Join(err1, err2); err != nil {
		integration(t, "supervisor is not installed (apt-get install supervisor): %v", err)
	}
	return d, c
}

var loopbackPort = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)

// systemPath is a path of the real installation that the test's must replace.
var systemPath = regexp.MustCompile(`(^|[\s="])/(usr|etc|var)/\S*`)

// installSupervised lays out deploy/supervisor's files under dir the way README
// installs them under /, with every loopback port replaced by a free one (other
// tests and servers may hold the real ones) and no user= switch (the test runs
// as whoever runs it). It returns the supervisord.conf to run and the new port
// of each old one.
func installSupervised(t *testing.T, dir, bin string) (string, map[string]string) {
	t.Helper()
	for _, d := range []string{"etc", "log", "lib/models"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := string(readRepoFile(t, "deploy/supervisor/reco.conf"))
	yml := string(readRepoFile(t, "deploy/supervisor/reco.yaml"))
	ports := map[string]string{}
	for _, m := range loopbackPort.FindAllStringSubmatch(conf+yml, -1) {
		if ports[m[1]] == "" {
			_, p, _ := net.SplitHostPort(freeAddr(t))
			ports[m[1]] = p
		}
	}
	paths := strings.NewReplacer(
		"/usr/local/bin/reco", bin,
		"/etc/reco/", filepath.Join(dir, "etc")+"/",
		"/var/log/reco/", filepath.Join(dir, "log")+"/",
		"/var/lib/reco", filepath.Join(dir, "lib"),
	)
	rewrite := func(s string) string {
		s = paths.Replace(s)
		s = loopbackPort.ReplaceAllStringFunc(s, func(a string) string { return "127.0.0.1:" + ports[a[len("127.0.0.1:"):]] })
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "user=") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	conf, yml = rewrite(conf), rewrite(yml)
	for _, s := range []string{conf, yml} {
		if m := systemPath.FindString(stripComments(s)); m != "" {
			t.Fatalf("the test's install left %s in place:\n%s", m, s)
		}
	}
	files := map[string]string{
		"etc/reco.yaml":       yml,
		"etc/strategies.yaml": string(readRepoFile(t, "deploy/strategies.yaml")),
		"reco.conf":           conf,
		"supervisord.conf": fmt.Sprintf(`[supervisord]
nodaemon=true
logfile=%[1]s/supervisord.log
pidfile=%[1]s/supervisord.pid
childlogdir=%[1]s/log
loglevel=info

[unix_http_server]
file=%[1]s/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%[1]s/supervisor.sock

[include]
files = %[1]s/reco.conf
`, dir),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "supervisord.conf"), ports
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitServing(ctx context.Context, addr, service string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s never became SERVING: %v %v", addr, service, resp.GetStatus(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestSupervisorRunsTheSuite runs deploy/supervisor/reco.conf under a real
// supervisord against the real Redis and HBase of scripts/integration.sh: the
// five programs come up SERVING, the original client gets a feed through
// routing, a killed program is restarted, and on shutdown every program drains
// and exits 0.
func TestSupervisorRunsTheSuite(t *testing.T) {
	thrift, redis := os.Getenv("RECOTEST_HBASE_THRIFT"), os.Getenv("RECOTEST_REDIS_ADDR")
	if thrift == "" || redis == "" {
		integration(t, "RECOTEST_HBASE_THRIFT and RECOTEST_REDIS_ADDR are not set: run under scripts/integration.sh (make test)")
	}
	supervisord, supervisorctl := supervisorBinaries(t)

	dir := t.TempDir()
	conf, ports := installSupervised(t, dir, recoBinary(t))
	addr := func(port string) string { return "127.0.0.1:" + ports[port] }
	grpcPorts := map[string]string{"routing": "9999", "recocenter": "10001", "recall": "10002", "sort": "10003", "cache": "10004"}

	// The store addresses come from supervisord's environment, which every
	// program inherits and which overrides reco.yaml: how an operator points a
	// machine at other servers without editing the file.
	storage := []string{"RECO_STORAGE_HBASE_THRIFT_ADDR=" + thrift, "RECO_STORAGE_REDIS_ADDRS=" + redis}
	// No other RECO_* variable of the test's environment reaches the programs: a
	// config key would override reco.yaml, anything else stops reco from starting.
	var environ []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.EnvPrefix) {
			environ = append(environ, kv)
		}
	}
	environ = append(environ, storage...)

	// Seed the fixture feed for a user of this run, and model 200 where sort reads it.
	user := fmt.Sprintf("supervised-%d", time.Now().UnixNano())
	cfg, err := config.Load(filepath.Join(dir, "etc/reco.yaml"), storage)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stores, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = fixture.SeedChannel(ctx, stores.Tables, stores.Sets, cfg.Sort.ModelDir, deployChannel, user)
	_ = cleanup()
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	sup := exec.Command(supervisord, "--nodaemon", "--configuration", conf)
	sup.Env = environ
	sup.Stdout, sup.Stderr = &out, &out
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sup.Wait() }()
	logs := func() string {
		var b strings.Builder
		for _, f := range append([]string{"supervisord.log"}, globNames(dir, "log/*.log")...) {
			content, _ := os.ReadFile(filepath.Join(dir, f))
			fmt.Fprintf(&b, "----- %s -----\n%s\n", f, tail(string(content), 30))
		}
		return b.String()
	}
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		_ = sup.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = sup.Process.Kill()
		}
	})
	ctl := func(args ...string) (string, error) {
		b, err := exec.Command(supervisorctl, append([]string{"--configuration", conf}, args...)...).CombinedOutput()
		return string(b), err
	}

	for _, name := range services {
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		err := waitServing(sctx, addr(grpcPorts[name]), healthService[name])
		scancel()
		if err != nil {
			t.Fatalf("reco-%s: %v\nsupervisord output:\n%s\n%s", name, err, &out, logs())
		}
	}
	// RUNNING once a program has stayed up startsecs (3s).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		status, err := ctl("status")
		if err == nil && strings.Count(status, " RUNNING ") == len(services) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervisorctl status = %v:\n%s\nwant all five RUNNING", err, status)
		}
	}

	// The public API through routing, across the five supervised processes.
	conn, err := grpc.NewClient(addr("9999"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	oc, err := originalclient.New(conn)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	tr, err := oc.UserRecommend(ctx, user, deployChannel, 5, now)
	if err != nil {
		t.Fatalf("user_recommend through supervised routing: %v\n%s", err, logs())
	}
	if len(tr.Recommends) != 5 || tr.Recommends[0].ArticleID != 2989 || tr.Exposure == "" || tr.TimeStamp != 0 {
		t.Errorf("first refresh = %+v, want 5 articles led by 2989, an exposure, time_stamp 0", tr)
	}
	again, err := oc.UserRecommend(ctx, user, deployChannel, 5, now+1000)
	if err != nil || len(again.Recommends) != 5 || again.TimeStamp != now || again.Recommends[0].ArticleID == tr.Recommends[0].ArticleID {
		t.Errorf("second refresh = %+v, %v; want 5 new articles and the first refresh's time stamp", again, err)
	}
	similar, err := oc.ArticleRecommend(ctx, 3000, 5)
	if err != nil || !slices.Equal(similar, []int64{3001, 3002, 3003}) {
		t.Errorf("article_recommend = %v, %v; want [3001 3002 3003]", similar, err)
	}
	// Prometheus's target on this machine: routing's metrics listener.
	if m := get(t, "http://"+addr("9100")+"/metrics"); !strings.Contains(m, `reco_served_articles_total{strategy=`) {
		t.Errorf("routing's /metrics lacks reco_served_articles_total after serving:\n%s", tail(m, 20))
	}

	// autorestart: a program that dies is started again.
	pidOut, err := ctl("pid", "reco:reco-sort")
	pid, perr := strconv.Atoi(strings.TrimSpace(pidOut))
	if err != nil || perr != nil || pid <= 0 {
		t.Fatalf("supervisorctl pid reco:reco-sort = %q, %v", pidOut, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		newPid, _ := ctl("pid", "reco:reco-sort")
		if n, err := strconv.Atoi(strings.TrimSpace(newPid)); err == nil && n > 0 && n != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reco-sort was not restarted after SIGKILL\n%s", logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	err = waitServing(sctx, addr("10003"), healthService["sort"])
	scancel()
	if err != nil {
		t.Fatalf("restarted reco-sort: %v\n%s", err, logs())
	}

	// Shutdown: SIGTERM to supervisord stops every program with SIGTERM; each
	// drains and exits 0 within stopwaitsecs, and supervisord exits 0.
	stopped = true
	start := time.Now()
	if err := sup.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("supervisord exited with %v\n%s", err, logs())
		}
	case <-time.After(60 * time.Second):
		_ = sup.Process.Kill()
		t.Fatalf("supervisord did not stop within 60s\n%s", logs())
	}
	took := time.Since(start)
	supLog, _ := os.ReadFile(filepath.Join(dir, "supervisord.log"))
	for _, name := range services {
		if want := fmt.Sprintf("stopped: reco-%s (exit status 0)", name); !strings.Contains(string(supLog), want) {
			t.Errorf("supervisord.log lacks %q: reco-%s did not exit cleanly\n%s", want, name, logs())
		}
		progLog, _ := os.ReadFile(filepath.Join(dir, "log", "reco-"+name+".log"))
		last := lastJSONMessages(string(progLog), 2)
		if !slices.Equal(last, []string{"draining", "stopped"}) {
			t.Errorf("reco-%s's last log lines say %q, want draining then stopped", name, last)
		}
	}
	if took > 15*time.Second {
		t.Errorf("stopping the suite took %v; an idle drain should be quick", took)
	}
}

func globNames(dir, pattern string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, pattern))
	var out []string
	for _, m := range matches {
		rel, _ := filepath.Rel(dir, m)
		out = append(out, rel)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var jsonMsg = regexp.MustCompile(`"msg":"([^"]*)"`)

// lastJSONMessages is the msg of the last n zap JSON lines of a log.
func lastJSONMessages(log string, n int) []string {
	var msgs []string
	for _, l := range strings.Split(log, "\n") {
		if m := jsonMsg.FindStringSubmatch(l); m != nil {
			msgs = append(msgs, m[1])
		}
	}
	if len(msgs) > n {
		msgs = msgs[len(msgs)-n:]
	}
	return msgs
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deployChannel is this package's fixture channel: test packages sharing the
// real Redis of make test each seed their own (see fixture.SeedChannel).
const deployChannel = 7
