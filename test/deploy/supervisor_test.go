package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/internal/originalclient"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
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
	spillOf := map[string]string{}
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
		if _, p := hostPort(t, where, cfg.Server.GRPCAddr); p != grpcPorts[name] {
			t.Errorf("%s listens on %s, want port %s as every deployment", where, cfg.Server.GRPCAddr, grpcPorts[name])
		}
		if _, p := hostPort(t, where, cfg.Server.MetricsAddr); p != metricsPorts[name] {
			t.Errorf("%s serves metrics on %s, want port %s as every deployment", where, cfg.Server.MetricsAddr, metricsPorts[name])
		}
		// Every process has server.http_addr (127.0.0.1:9998 by default): the
		// two with HTTP routes each name their own, or they would collide.
		if want, ok := httpServers[name]; ok && env["RECO_SERVER_HTTP_ADDR"] != "127.0.0.1:"+want {
			t.Errorf("%s: RECO_SERVER_HTTP_ADDR=%q, want 127.0.0.1:%s in its environment", where, env["RECO_SERVER_HTTP_ADDR"], want)
		}
		// Three programs open the log: it must be Kafka (the embedded log
		// takes one process), and each spill directory has one owner.
		if slices.Contains(logUsers, name) && cfg.Storage.Log.Backend != "kafka" {
			t.Errorf("%s: storage.log.backend %q, want kafka: %v all open the log", where, cfg.Storage.Log.Backend, logUsers)
		}
		if dir := cfg.Storage.Log.Kafka.SpillDir; dir != "" {
			if other, taken := spillOf[dir]; taken {
				t.Errorf("%s spills to %s, as reco-%s does: one process per directory", where, dir, other)
			}
			spillOf[dir] = name
		} else if slices.Contains(logAppenders, name) {
			t.Errorf("%s appends to the log but has no storage.log.kafka.spill_dir: a Kafka outage fails its calls", where)
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
	// nearline's consumer runs before routing takes readers' actions.
	if priority["nearline"] >= priority["routing"] {
		t.Errorf("reco-nearline (priority %d) starts after reco-routing (%d), which appends what it consumes", priority["nearline"], priority["routing"])
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
		// script is a program running scripts/<name>.sh in the foreground;
		// it returns its section and environment.
		script := func(name string) (iniSection, map[string]string) {
			t.Helper()
			p := st["program:"+name]
			if p["command"] != "/opt/toutiao-reco/scripts/"+name+".sh run" {
				t.Errorf("[program:%s] command=%q, want scripts/%s.sh run", name, p["command"], name)
			}
			if !bytes.Contains(readRepoFile(t, "scripts/"+name+".sh"), []byte("  run) run ;;")) {
				t.Errorf("scripts/%s.sh has no run subcommand", name)
			}
			env, err := supervisorEnv(p["environment"])
			if err != nil {
				t.Fatalf("[program:%s] environment: %v", name, err)
			}
			return p, env
		}
		hb, env := script("hbase")
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
		kf, kenv := script("kafka")
		if b := cfg.Storage.Log.Kafka.Brokers; cfg.Storage.Log.Backend != "kafka" || len(b) != 1 || b[0] != "127.0.0.1:"+kenv["KAFKA_PORT"] || kenv["KAFKA_CONTROLLER_PORT"] == "" {
			t.Errorf("kafka listens on %q (controller %q), reco.yaml's log is %s at %v", kenv["KAFKA_PORT"], kenv["KAFKA_CONTROLLER_PORT"], cfg.Storage.Log.Backend, b)
		}
		// kafka.sh stop gives the JVM 30s, then 10s after a SIGKILL.
		if s, _ := strconv.Atoi(kf["stopwaitsecs"]); s <= 40 || kf["stopsignal"] != "TERM" {
			t.Errorf("[program:kafka] stopsignal=%s stopwaitsecs=%s: kafka.sh stops the JVM on TERM within 40s", kf["stopsignal"], kf["stopwaitsecs"])
		}
		group := st["group:reco-storage"]
		if got := strings.Split(group["programs"], ","); !slices.Equal(sortedCopy(got), []string{"hbase", "kafka", "redis"}) {
			t.Errorf("[group:reco-storage] programs=%v, want hbase, kafka, redis", got)
		}
		// Groups start by ascending priority and stop in reverse: the stores
		// before the services (whose group has the default 999), and after.
		if p, err := strconv.Atoi(group["priority"]); err != nil || p >= 999 || conf["group:reco"]["priority"] != "" {
			t.Errorf("[group:reco-storage] priority=%q ([group:reco] %q): want the stores to start first and stop last", group["priority"], conf["group:reco"]["priority"])
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
// as whoever runs it): reco.conf, and storage.conf's Kafka, a broker of the
// test's own (the shared one of make test has consumers of the same group in
// other packages' tests), from the Kafka install in kafkaCache. It returns the
// supervisord.conf to run and the new port of each old one.
func installSupervised(t *testing.T, dir, bin, kafkaCache string) (string, map[string]string) {
	t.Helper()
	for _, d := range []string{"etc", "log", "lib/models", "lib/kafka/classes"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// What `kafka.sh install` resolved (the jars stay where Maven put them).
	for _, f := range []string{"classpath.txt", "classpath.stamp", "classes/KafkaPing.class"} {
		b, err := os.ReadFile(filepath.Join(kafkaCache, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "lib/kafka", f), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	conf := string(readRepoFile(t, "deploy/supervisor/reco.conf"))
	yml := string(readRepoFile(t, "deploy/supervisor/reco.yaml"))
	kafka := iniSectionText(t, "deploy/supervisor/storage.conf", "program:kafka")
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
	// Kafka: the script of this checkout, its listener where reco.yaml's
	// brokers (rewritten above) point, its controller on a free port, and no
	// class-data archive to write for a one-off JVM.
	kafka = strings.ReplaceAll(rewrite(kafka), "/opt/toutiao-reco/scripts/", abs(t, "scripts")+"/")
	kafka = kafkaPortVar.ReplaceAllStringFunc(kafka, func(kv string) string {
		k, v, _ := strings.Cut(kv, "=")
		if k == "KAFKA_CONTROLLER_PORT" {
			_, p, _ := net.SplitHostPort(freeAddr(t))
			return k + `="` + p + `"`
		}
		p := ports[strings.Trim(v, `"`)]
		if p == "" {
			t.Fatalf("storage.conf's %s is no port reco.yaml names", kv)
		}
		return k + `="` + p + `"`
	})
	kafka = strings.Replace(kafka, "\nenvironment=", "\nenvironment=KAFKA_CDS=\"0\",", 1)
	for _, s := range []string{conf, yml, kafka} {
		if m := systemPath.FindString(stripComments(s)); m != "" {
			t.Fatalf("the test's install left %s in place:\n%s", m, s)
		}
	}
	files := map[string]string{
		"etc/reco.yaml":       yml,
		"etc/strategies.yaml": string(readRepoFile(t, "deploy/strategies.yaml")),
		"reco.conf":           conf,
		"kafka.conf":          kafka,
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
files = %[1]s/reco.conf %[1]s/kafka.conf
`, dir),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "supervisord.conf"), ports
}

var kafkaPortVar = regexp.MustCompile(`KAFKA_(CONTROLLER_)?PORT="\d+"`)

// iniSectionText is the text of one [section] of a supervisord file of the
// repository, comments included, up to the next section.
func iniSectionText(t *testing.T, rel, section string) string {
	t.Helper()
	text := string(readRepoFile(t, rel))
	start := strings.Index(text, "\n["+section+"]\n")
	if start < 0 {
		t.Fatalf("%s has no [%s]", rel, section)
	}
	text = text[start+1:]
	if end := strings.Index(text, "\n["); end >= 0 {
		text = text[:end+1]
	}
	return text
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // only its port was wanted
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
// supervisord against the real Redis and HBase of scripts/integration.sh, with
// storage.conf's Kafka under the same supervisord: the six programs come up
// SERVING, the original client gets a feed through routing, an exposure the
// app reports to routing reaches nearline through Kafka, a killed program is
// restarted, and on shutdown every program drains and exits 0.
func TestSupervisorRunsTheSuite(t *testing.T) {
	thrift, redis := os.Getenv("RECOTEST_HBASE_THRIFT"), os.Getenv("RECOTEST_REDIS_ADDR")
	if thrift == "" || redis == "" {
		integration(t, "RECOTEST_HBASE_THRIFT and RECOTEST_REDIS_ADDR are not set: run under scripts/integration.sh (make test)")
	}
	kafkaCache := filepath.Join(repoPath(".cache"), "kafka")
	if c := os.Getenv("RECOSCRIPTS_CACHE"); c != "" {
		kafkaCache = filepath.Join(c, "kafka")
	}
	if _, err := os.Stat(filepath.Join(kafkaCache, "classpath.txt")); err != nil {
		integration(t, "Kafka is not installed (scripts/kafka.sh install, which make test runs): %v", err)
	}
	supervisord, supervisorctl := supervisorBinaries(t)

	dir := t.TempDir()
	conf, ports := installSupervised(t, dir, recoBinary(t), kafkaCache)
	addr := func(port string) string { return "127.0.0.1:" + ports[port] }

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
	// The test is about the wiring: the hops get generous deadlines, or a cold
	// sort's first ranking on a busy machine degrades the page it checks.
	environ = append(environ, fixture.WiringDeadlines()...)

	// Seed the fixture feed for a user of this run, and model 200 where sort reads it.
	user := fmt.Sprintf("supervised-%d", time.Now().UnixNano())
	cfg, err := config.Load(filepath.Join(dir, "etc/reco.yaml"), storage)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
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
		case err := <-exited:
			if err != nil {
				t.Logf("supervisord after SIGTERM: %v", err)
			}
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
	// As README installs it, the stores answer before the suite is used:
	// Kafka's JVM takes longer to start than the reco programs.
	if err := waitKafka(ctx, addr("9092"), 120*time.Second); err != nil {
		t.Fatalf("storage.conf's kafka: %v\n%s", err, logs())
	}
	// RUNNING once a program has stayed up startsecs (3s; Kafka 10s).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		status, err := ctl("status")
		if err == nil && strings.Count(status, " RUNNING ") == len(services)+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervisorctl status = %v:\n%s\nwant kafka and the six reco programs RUNNING\n%s", err, status, logs())
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
		t.Errorf("first refresh = %+v, want 5 articles led by 2989, an exposure, time_stamp 0\n%s", tr, logs())
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

	// The loop: the app reports the first page's exposure (and a line that is
	// no action) to routing, which puts it on Kafka's click-trace; nearline
	// consumes it and counts the articles shown. An exposure heats no hot list
	// (clicks do), so the shared stores' lists stay as the other tests left them.
	var exposure struct {
		Strategy string `json:"algorithmCombine"`
	}
	if err := json.Unmarshal([]byte(tr.Exposure), &exposure); err != nil || exposure.Strategy == "" {
		t.Fatalf("exposure %q: %v", tr.Exposure, err)
	}
	line := fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": %s}`, time.Now().UnixMilli(), deployChannel, tr.Exposure)
	rep, err := trackv1.NewTrackServiceClient(conn).Report(ctx, &trackv1.ReportRequest{Lines: []string{line, `{"action": "nap"}`}})
	if err != nil || rep.GetAccepted() != 1 || len(rep.GetRejected()) != 1 || rep.GetRejected()[0].GetIndex() != 1 {
		t.Fatalf("TrackService/Report through supervised routing = %v, %v; want the exposure accepted, the nap rejected\n%s", rep, err, logs())
	}
	applied := fmt.Sprintf(`reco_actions_total{action="exposure",strategy=%q} %d`, exposure.Strategy, len(tr.Recommends))
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		m := get(t, "http://"+addr("9105")+"/metrics")
		if strings.Contains(m, applied) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nearline's /metrics lacks %s 90s after routing accepted the exposure:\n%s\n%s", applied, grepLines(m, "reco_actions_total"), logs())
		}
	}
	if m := get(t, "http://"+addr("9100")+"/metrics"); !strings.Contains(m, `reco_action_lines_total{outcome="accepted"} 1`) || !strings.Contains(m, `reco_action_lines_total{outcome="rejected"} 1`) {
		t.Errorf("routing's /metrics after one accepted and one rejected line:\n%s", grepLines(m, "reco_action_lines_total"))
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
	if !strings.Contains(string(supLog), "stopped: kafka (exit status 0)") {
		t.Errorf("supervisord.log lacks kafka's clean stop\n%s", logs())
	}
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
	// The reco group drains together (lame duck 5s), then Kafka stops.
	if took > 25*time.Second {
		t.Errorf("stopping the suite took %v; an idle drain and a broker's stop should be quick", took)
	}
}

// waitKafka waits until the broker at addr answers a metadata request.
func waitKafka(ctx context.Context, addr string, timeout time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := cl.Ping(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the broker at %s did not answer within %v: %v", addr, timeout, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
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
	defer func() { _ = resp.Body.Close() }() // read whole below: closing loses nothing
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deployChannel is this package's fixture channel: test packages sharing the
// real Redis of make test each seed their own (see fixture.SeedChannel).
const deployChannel = 7
