package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

func parseDockerfile(t *testing.T, rel string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: the last instruction ends in a continuation", rel)
	}
	return out
}

// stage is one FROM … section.
type stage struct {
	from, name string
	ins        []instruction
}

func stages(ins []instruction) []stage {
	var out []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[len(f)-1]}
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				s.from, s.name = f[len(f)-3], f[len(f)-1]
			}
			out = append(out, s)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].ins = append(out[len(out)-1].ins, in)
		}
	}
	return out
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) last(cmd string) string {
	all := s.all(cmd)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1].args
}

// execForm decodes a JSON-array instruction argument (ENTRYPOINT, CMD, HEALTHCHECK CMD).
func execForm(t *testing.T, where, args string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		t.Errorf("%s: %q is not the exec (JSON) form, so signals would go to a shell: %v", where, args, err)
	}
	return out
}

var envPair = regexp.MustCompile(`([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)`)

// envOf is every ENV of a stage.
func envOf(s stage) map[string]string {
	env := map[string]string{}
	for _, in := range s.all("ENV") {
		for _, m := range envPair.FindAllStringSubmatch(in.args, -1) {
			env[m[1]] = strings.Trim(m[2], `"`)
		}
	}
	return env
}

// argDefault is the default of ARG name in the instructions before the first FROM or in s.
func argDefault(ins []instruction, name string) string {
	for _, in := range ins {
		if in.cmd == "ARG" {
			if k, v, ok := strings.Cut(in.args, "="); ok && k == name {
				return v
			}
		}
	}
	return ""
}

// copySources are the build-context paths of a stage's COPY instructions.
func copySources(s stage) []string {
	var out []string
	for _, in := range s.all("COPY") {
		f := strings.Fields(in.args)
		if slices.ContainsFunc(f, func(a string) bool { return strings.HasPrefix(a, "--from=") }) {
			continue
		}
		var paths []string
		for _, a := range f {
			if !strings.HasPrefix(a, "--") {
				paths = append(paths, a)
			}
		}
		out = append(out, paths[:len(paths)-1]...)
	}
	return out
}

func checkNonRoot(t *testing.T, where string, s stage) {
	t.Helper()
	user := strings.Fields(s.last("USER"))
	if len(user) == 0 || slices.Contains([]string{"root", "0", "0:0", "root:root"}, user[0]) {
		t.Errorf("%s: the runtime stage runs as %q, want a non-root USER", where, s.last("USER"))
	}
}

// checkContext fails for every source that is missing from the repository or
// that .dockerignore keeps out of the build context (BuildKit's own matcher).
func checkContext(t *testing.T, where string, sources []string) {
	t.Helper()
	patterns, err := ignorefile.ReadAll(bytes.NewReader(readRepoFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range sources {
		src = strings.TrimSuffix(filepath.Clean(src), "/")
		var files []string
		if src == "." {
			files = []string{"go.mod", "cmd/reco/main.go", "pkg/config/config.go", "internal/fixture/fixture.go"}
		} else if err := filepath.Walk(repoPath(src), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				rel, _ := filepath.Rel(root, p)
				files = append(files, rel)
			}
			return err
		}); err != nil {
			t.Errorf("%s copies %s: %v", where, src, err)
			continue
		}
		for _, f := range files {
			if excluded, err := pm.MatchesOrParentMatches(f); err != nil || excluded {
				t.Errorf("%s needs %s, which .dockerignore excludes from the build context (%v)", where, f, err)
			}
		}
	}
	for _, f := range []string{".cache/reco.db", "bin/reco", ".git/HEAD"} {
		if excluded, _ := pm.MatchesOrParentMatches(f); !excluded {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}

var (
	staticBuild     sync.Once
	staticBinary    string
	staticBuildErr  error
	staticBuildLogs []byte
)

// recoBinary builds cmd/reco once, exactly as the Dockerfile does (static, no
// cgo: the runtime image has no libc), and returns its path. The supervisor test
// runs this artifact.
func recoBinary(t *testing.T) string {
	t.Helper()
	staticBuild.Do(func() {
		dir, err := os.MkdirTemp("", "reco-deploy-test-")
		if err != nil {
			staticBuildErr = err
			return
		}
		staticBinary = filepath.Join(dir, "reco")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", staticBinary, "./cmd/reco")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		staticBuildLogs, staticBuildErr = cmd.CombinedOutput()
	})
	if staticBuildErr != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/reco (the Dockerfile's build): %v\n%s", staticBuildErr, staticBuildLogs)
	}
	return staticBinary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if staticBinary != "" {
		_ = os.RemoveAll(filepath.Dir(staticBinary))
	}
	os.Exit(code)
}

func TestRecoDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	st := stages(ins)
	if len(st) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a runtime stage", len(st))
	}
	build, run := st[0], st[len(st)-1]

	goMod := string(readRepoFile(t, "go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if got := argDefault(ins, "GO_VERSION"); got != m[1] {
		t.Errorf("ARG GO_VERSION=%s, want go.mod's go %s", got, m[1])
	}
	if !strings.HasPrefix(build.from, "golang:${GO_VERSION}") {
		t.Errorf("builder FROM %s, want the official golang image at GO_VERSION", build.from)
	}
	if run.from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("runtime FROM %s, want the distroless static nonroot image", run.from)
	}
	var built bool
	for _, r := range build.all("RUN") {
		if strings.Contains(r.args, "CGO_ENABLED=0") && strings.Contains(r.args, "go build") && strings.Contains(r.args, "./cmd/reco") {
			built = true
		}
	}
	if !built {
		t.Error("the builder does not run CGO_ENABLED=0 go build ./cmd/reco")
	}
	checkNonRoot(t, "Dockerfile", run)
	if ep := execForm(t, "ENTRYPOINT", run.last("ENTRYPOINT")); !slices.Equal(ep, []string{"/usr/local/bin/reco"}) {
		t.Errorf("ENTRYPOINT %q, want /usr/local/bin/reco", ep)
	}
	if cmd := execForm(t, "CMD", run.last("CMD")); len(cmd) == 0 || cmd[0] != "serve" {
		t.Errorf("CMD %q, want serve", cmd)
	}
	hc := run.last("HEALTHCHECK")
	if i := strings.Index(hc, "CMD "); i < 0 || !slices.Equal(execForm(t, "HEALTHCHECK", hc[i+4:]), []string{"/usr/local/bin/reco", "health"}) {
		t.Errorf("HEALTHCHECK %q, want CMD reco health", hc)
	}
	env := envOf(run)
	cfg, _ := checkConfigEnv(t, "Dockerfile ENV", env, nil)
	for _, addr := range []string{cfg.Server.GRPCAddr, cfg.Server.MetricsAddr, cfg.Server.HTTPAddr} {
		if h, _ := hostPort(t, "Dockerfile ENV", addr); h != "0.0.0.0" {
			t.Errorf("Dockerfile ENV: a container listening on %s cannot be reached", addr)
		}
	}
	var exposed []string
	for _, e := range run.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(e.args)...)
	}
	for _, p := range []string{"9999", "10001", "10002", "10003", "10004", "10005", "9100", "9101", "9102", "9103", "9104", "9105", "9998", "9997"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("Dockerfile does not EXPOSE %s", p)
		}
	}
	checkContext(t, "Dockerfile", copySources(build))

	// What the image runs: the Dockerfile's build of the binary works and answers.
	out, err := exec.Command(recoBinary(t), "config", "env").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("RECO_SERVER_GRPC_ADDR")) {
		t.Errorf("static reco config env: %v\n%s", err, out)
	}
}

func TestHBaseDockerfile(t *testing.T) {
	const rel = "deploy/hbase/Dockerfile"
	ins := parseDockerfile(t, rel)
	st := stages(ins)
	if len(st) != 2 {
		t.Fatalf("%s has %d stages, want jars (maven) and runtime", rel, len(st))
	}
	jars, run := st[0], st[1]
	// Official images only: Maven and Eclipse Temurin (JDK 17).
	if !regexp.MustCompile(`^maven:[0-9.]+-eclipse-temurin-17$`).MatchString(jars.from) {
		t.Errorf("%s: jars stage FROM %s, want the official maven image on Temurin 17", rel, jars.from)
	}
	if !regexp.MustCompile(`^eclipse-temurin:17-jdk(-[a-z]+)?$`).MatchString(run.from) {
		t.Errorf("%s: runtime FROM %s, want the official eclipse-temurin 17 JDK (hbase.sh needs javac and jar)", rel, run.from)
	}
	script := string(readRepoFile(t, "scripts/hbase.sh"))
	version := regexp.MustCompile(`HBASE_VERSION="\$\{HBASE_VERSION:-([0-9.]+)\}"`).FindStringSubmatch(script)
	if version == nil || argDefault(ins, "HBASE_VERSION") != version[1] {
		t.Errorf("%s: ARG HBASE_VERSION=%s, want scripts/hbase.sh's default %v", rel, argDefault(ins, "HBASE_VERSION"), version)
	}
	var installs bool
	for _, r := range jars.all("RUN") {
		installs = installs || strings.Contains(r.args, "scripts/hbase.sh install")
	}
	if !installs {
		t.Errorf("%s: the jars stage does not run scripts/hbase.sh install", rel)
	}
	checkNonRoot(t, rel, run)
	ep := execForm(t, rel+" ENTRYPOINT", run.last("ENTRYPOINT"))
	if len(ep) != 2 || !strings.HasSuffix(ep[0], "/scripts/hbase.sh") || ep[1] != "run" {
		t.Errorf("%s: ENTRYPOINT %q, want scripts/hbase.sh run", rel, ep)
	}
	if !strings.Contains(script, "\n  run) run ;;") {
		t.Error("scripts/hbase.sh has no run subcommand")
	}
	hc := run.last("HEALTHCHECK")
	if i := strings.Index(hc, "CMD "); i < 0 || !slices.Equal(execForm(t, rel+" HEALTHCHECK", hc[i+4:]), []string{ep[0], "status"}) {
		t.Errorf("%s: HEALTHCHECK %q, want hbase.sh status (a real Thrift2 request)", rel, hc)
	}
	env := envOf(run)
	if env["HBASE_THRIFT_BIND"] != "0.0.0.0" || env["HBASE_THRIFT_PORT"] == "" || !slices.Contains(strings.Fields(run.last("EXPOSE")), env["HBASE_THRIFT_PORT"]) {
		t.Errorf("%s: Thrift2 on %s:%s, exposed %s; want it on all interfaces and exposed", rel, env["HBASE_THRIFT_BIND"], env["HBASE_THRIFT_PORT"], run.last("EXPOSE"))
	}
	for k := range env {
		if k != "RECOSCRIPTS_CACHE" && k != "JAVA" && !strings.HasPrefix(k, "HBASE_") {
			t.Errorf("%s: ENV %s is not a variable scripts/hbase.sh reads", rel, k)
		} else if !strings.Contains(script, k) {
			t.Errorf("%s: ENV %s does not appear in scripts/hbase.sh", rel, k)
		}
	}
	checkContext(t, rel, copySources(jars))

	// The compose service uses this image and reaches it where it listens.
	p := loadCompose(t)
	hb := p.Services["hbase"]
	if hb.Build == nil || filepath.Base(filepath.Dir(hb.Build.Dockerfile)) != "hbase" || hb.Image != fmt.Sprintf("toutiao-reco/hbase:%s", argDefault(ins, "HBASE_VERSION")) {
		t.Errorf("compose hbase: image %s, build %+v; want toutiao-reco/hbase:%s from %s", hb.Image, hb.Build, argDefault(ins, "HBASE_VERSION"), rel)
	}
	for _, name := range services {
		if got := composeEnv(p.Services[name].Environment)["RECO_STORAGE_HBASE_THRIFT_ADDR"]; got != "hbase:"+env["HBASE_THRIFT_PORT"] {
			t.Errorf("compose %s reaches HBase at %s, the image serves Thrift2 on hbase:%s", name, got, env["HBASE_THRIFT_PORT"])
		}
	}
}
