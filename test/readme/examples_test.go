package readme

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The addresses `make run` serves on, as the README's examples call them.
const (
	readmeGRPC = "127.0.0.1:9999"
	readmeHTTP = "127.0.0.1:9998"
)

// example is one grpcurl or curl command of README.md, with what the README
// says it prints.
type example struct {
	line int
	cmd  string   // the command, continuation lines and here-document included
	want []string // the comment lines right after it, without "# "
}

// exampleBlock is a ```sh block of README.md with examples: its other lines
// that set variables (now=…, export …), in order, and its examples.
type exampleBlock struct {
	line     int
	prelude  []string
	examples []example
}

var (
	assignment = regexp.MustCompile(`^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=`)
	hereDoc    = regexp.MustCompile(`<<-?\s*['"]?([A-Za-z0-9_]+)['"]?`)
)

// makeRunExample reports whether cmd is a call a `make run` server answers:
// grpcurl in plaintext or curl over http to its two ports.
func makeRunExample(cmd string) bool {
	first := strings.Fields(cmd)
	if len(first) == 0 || (first[0] != "grpcurl" && first[0] != ".cache/bin/grpcurl" && first[0] != "curl") {
		return false
	}
	if strings.Contains(cmd, "-cacert") || strings.Contains(cmd, "--cacert") || strings.Contains(cmd, "https://") || strings.Contains(cmd, "localhost:") {
		return false
	}
	addr := regexp.MustCompile(`\b127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(cmd, -1)
	if len(addr) == 0 {
		return false
	}
	for _, a := range addr {
		if "127.0.0.1:"+a[1] != readmeGRPC && "127.0.0.1:"+a[1] != readmeHTTP {
			return false
		}
	}
	return true
}

// readmeExamples finds the examples of the README's shell blocks.
func readmeExamples(doc string) []exampleBlock {
	_, blocks := splitMarkdown(doc)
	var out []exampleBlock
	for _, b := range blocks {
		if b.info != "sh" && b.info != "bash" && b.info != "shell" {
			continue
		}
		eb := exampleBlock{line: b.line}
		for i := 0; i < len(b.lines); i++ {
			start := i
			cmd := b.lines[i]
			for strings.HasSuffix(strings.TrimRight(cmd, " "), `\`) && i+1 < len(b.lines) {
				i++
				cmd += "\n" + b.lines[i]
			}
			if m := hereDoc.FindStringSubmatch(cmd); m != nil && !strings.HasPrefix(strings.TrimSpace(cmd), "#") {
				for i+1 < len(b.lines) {
					i++
					cmd += "\n" + b.lines[i]
					if strings.TrimSpace(b.lines[i]) == m[1] {
						break
					}
				}
			}
			trimmed := strings.TrimSpace(cmd)
			switch {
			case makeRunExample(trimmed):
				ex := example{line: b.line + start, cmd: trimmed}
				for i+1 < len(b.lines) && strings.HasPrefix(strings.TrimSpace(b.lines[i+1]), "#") {
					i++
					ex.want = append(ex.want, strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(b.lines[i]), "#"), " "))
				}
				eb.examples = append(eb.examples, ex)
			case assignment.MatchString(trimmed) && !strings.Contains(trimmed, "RECO_"):
				// Variables the examples use (now=…, PATH); the RECO_* ones
				// configure a server of another section, not this one.
				eb.prelude = append(eb.prelude, trimmed)
			}
		}
		if len(eb.examples) > 0 {
			out = append(out, eb)
		}
	}
	return out
}

// outcome is what running an example printed.
type outcome struct {
	exit     int
	output   string // stdout and stderr
	httpCode int    // curl's status code, 0 for grpcurl
}

// runBlock runs a block's examples in one shell, in order, so that variables
// (now) carry from one to the next as they do for a reader, against the
// server at grpcAddr and httpAddr.
func runBlock(t *testing.T, b exampleBlock, grpcAddr, httpAddr string) []outcome {
	t.Helper()
	var script strings.Builder
	script.WriteString("cd " + strconv.Quote(root) + "\n")
	for _, p := range b.prelude {
		script.WriteString(p + "\n")
	}
	for i, ex := range b.examples {
		cmd := strings.NewReplacer(readmeGRPC, grpcAddr, readmeHTTP, httpAddr).Replace(ex.cmd)
		if strings.HasPrefix(cmd, "curl ") {
			// The status code, which curl -s does not show.
			cmd = "curl -w '\\n@@http %{http_code}\\n' " + strings.TrimPrefix(cmd, "curl ")
		}
		fmt.Fprintf(&script, "echo '@@begin %d'\n%s\necho \"@@exit $?\"\n", i, cmd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Env = append(os.Environ(), "PATH="+filepath.Join(root, ".cache", "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("README.md:%d: the block's examples did not run: %v\n%s", b.line, err, out)
	}
	results := make([]outcome, len(b.examples))
	cur := -1
	var buf strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "@@begin "):
			cur, _ = strconv.Atoi(strings.TrimPrefix(l, "@@begin "))
			buf.Reset()
		case strings.HasPrefix(l, "@@http "):
			results[cur].httpCode, _ = strconv.Atoi(strings.TrimPrefix(l, "@@http "))
		case strings.HasPrefix(l, "@@exit "):
			results[cur].exit, _ = strconv.Atoi(strings.TrimPrefix(l, "@@exit "))
			results[cur].output = strings.TrimSpace(buf.String())
		case cur >= 0:
			buf.WriteString(l + "\n")
		}
	}
	return results
}

var (
	grpcError  = regexp.MustCompile(`^ERROR:\s*Code:\s*(\w+)\s+Message:\s*(.*)$`)
	statusLine = regexp.MustCompile(`^HTTP/[\d.]+ (\d{3})`)
	serviceID  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	spaces     = regexp.MustCompile(`\s+`)
)

func squash(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// checkExample compares what an example did with what the README says: an
// error (ERROR: Code … Message …) with grpcurl's; an HTTP status line with
// curl's; a JSON answer, where the README shows it whole, with the JSON
// printed; a grpcurl list with the services listed; a JSON answer shown in
// part ("…") by each of its complete "key": value lines. An example the README
// shows no error for must succeed.
func checkExample(ex example, got outcome) []string {
	var problems []string
	fail := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("README.md:%d: %s\n\t%s\n\tprinted (exit %d): %s", ex.line, fmt.Sprintf(format, args...), ex.cmd, got.exit, got.output))
	}
	body := got.output
	if strings.HasPrefix(body, "HTTP/") { // curl -i: the headers, a blank line, the body
		body = strings.ReplaceAll(body, "\r\n", "\n")
		if i := strings.Index(body, "\n\n"); i >= 0 {
			body = strings.TrimSpace(body[i+2:])
		}
	}
	want := ex.want
	if len(want) > 0 {
		if m := grpcError.FindStringSubmatch(want[0]); m != nil {
			if got.exit == 0 || !strings.Contains(squash(got.output), "Code: "+m[1]) || !strings.Contains(squash(got.output), "Message: "+squash(m[2])) {
				fail("the README says it fails with Code: %s Message: %s", m[1], m[2])
			}
			return problems
		}
		if m := statusLine.FindStringSubmatch(want[0]); m != nil {
			if code, _ := strconv.Atoi(m[1]); got.httpCode != code {
				fail("the README says HTTP %s; curl got %d", m[1], got.httpCode)
			}
			want = want[1:]
		} else if got.exit != 0 || got.httpCode >= 400 {
			fail("it failed (HTTP %d)", got.httpCode)
			return problems
		}
	} else if got.exit != 0 || got.httpCode >= 400 {
		fail("it failed (HTTP %d)", got.httpCode)
		return problems
	}
	if len(want) == 0 {
		return problems
	}
	switch {
	case strings.HasPrefix(want[0], "{") || strings.HasPrefix(want[0], "["):
		for n := 1; n <= len(want); n++ {
			shown := strings.Join(want[:n], "\n")
			if !json.Valid([]byte(shown)) {
				continue
			}
			var w, g any
			_ = json.Unmarshal([]byte(shown), &w)
			if err := json.Unmarshal([]byte(body), &g); err != nil || !reflect.DeepEqual(w, g) {
				fail("the README shows %s", squash(shown))
			}
			return problems
		}
		// Shown in part: each complete "key": value line must be in the answer.
		for _, l := range want {
			l = strings.TrimSuffix(strings.TrimSpace(strings.TrimLeft(l, "{[ ")), ",")
			if !strings.HasPrefix(l, `"`) || strings.Contains(l, "...") || strings.Contains(l, "…") {
				continue
			}
			if !strings.Contains(squash(body), squash(l)) && !strings.Contains(strings.ReplaceAll(body, `":"`, `": "`), l) {
				fail("the README shows %s", l)
			}
		}
	case strings.HasSuffix(strings.Fields(ex.cmd)[len(strings.Fields(ex.cmd))-1], "list"):
		var shown []string
		for _, l := range want {
			if !serviceID.MatchString(l) {
				break
			}
			shown = append(shown, l)
		}
		listed := strings.Fields(got.output)
		if !slices.Equal(shown, listed) {
			fail("the README lists %v", shown)
		}
	}
	return problems
}

// startMakeRun starts what `make run` starts, from the Makefile's own recipe
// (bin/reco admin demo, then bin/reco serve), with this tree's reco, its store
// and models in a temporary directory and its three listeners on free ports.
// It returns the gRPC and HTTP addresses.
func startMakeRun(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "reco")
	build := exec.Command("go", "build", "-o", bin, "./cmd/reco")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/reco: %v\n%s", err, out)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	env := []string{
		"RECO_SERVER_GRPC_ADDR=" + grpcAddr, "RECO_SERVER_HTTP_ADDR=" + httpAddr, "RECO_SERVER_METRICS_ADDR=" + freeAddr(t),
		"RECO_STORAGE_EMBEDDED_PATH=" + filepath.Join(dir, "reco.db"), "RECO_STORAGE_EMBEDDED_NO_SYNC=true",
		"RECO_STORAGE_LOG_EMBEDDED_DIR=" + filepath.Join(dir, "log"), "RECO_SORT_MODEL_DIR=" + filepath.Join(dir, "models"),
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RECO_") { // reco refuses RECO_* variables that are not its keys
			env = append(env, kv)
		}
	}
	var serve *exec.Cmd
	var serveLog bytes.Buffer
	for _, line := range makeRecipe(t, "run") {
		line = strings.TrimLeft(line, "@-")
		if !strings.Contains(line, "bin/reco ") {
			continue // mkdir, echo
		}
		line = strings.ReplaceAll(strings.ReplaceAll(line, "bin/reco ", strconv.Quote(bin)+" "), ".cache/models", strconv.Quote(filepath.Join(dir, "models")))
		cmd := exec.Command("bash", "-c", "exec env "+line)
		cmd.Dir, cmd.Env = dir, env
		if strings.Contains(line, " serve") {
			serve = cmd
			cmd.Stdout, cmd.Stderr = &serveLog, &serveLog
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
				if t.Failed() {
					t.Logf("make run's server log:\n%s", tail(serveLog.String(), 15))
				}
			})
			continue
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make run: %s: %v\n%s", line, err, out)
		}
	}
	if serve == nil {
		t.Fatal("the Makefile's run recipe starts no bin/reco serve")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("make run's server is not serving: %v, %v\n%s", resp, err, tail(serveLog.String(), 40))
	}
	return grpcAddr, httpAddr
}

// makeRecipe returns the recipe lines of target in the Makefile.
func makeRecipe(t *testing.T, target string) []string {
	t.Helper()
	var lines []string
	in := false
	for _, l := range strings.Split(readDoc(t, "Makefile"), "\n") {
		switch {
		case strings.HasPrefix(l, target+":"):
			in = true
		case in && strings.HasPrefix(l, "\t"):
			lines = append(lines, strings.TrimSpace(l))
		case in:
			return lines
		}
	}
	return lines
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

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// integration fails the test when RECOTEST_REQUIRE_INTEGRATION=1 (make test
// installs what it needs, so a missing tool is a broken setup) and skips it
// otherwise.
func integration(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("RECOTEST_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf(format+" (RECOTEST_REQUIRE_INTEGRATION=1: this test must run)", args...)
	}
	t.Skipf(format, args...)
}

// TestReadmeExamples runs README.md's grpcurl and curl examples, as written
// (only the addresses moved to free ports), against the server `make run`
// starts, in the README's order as a reader would, and checks that each
// answers what the README says: the error it shows, the JSON it shows, the
// services it lists; an example shown without an error must succeed. grpcurl
// is the one `make tools` (and `make test`) installs into .cache/bin, put on the
// PATH as the README says.
func TestReadmeExamples(t *testing.T) {
	if _, err := os.Stat(filepath.Join(root, ".cache", "bin", "grpcurl")); err != nil {
		integration(t, "grpcurl is not in .cache/bin (make tools installs it; make test does too): %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		integration(t, "curl is not installed: %v", err)
	}
	blocks := readmeExamples(readDoc(t, "README.md"))
	n := 0
	for _, b := range blocks {
		n += len(b.examples)
	}
	if n < 15 {
		t.Fatalf("found %d grpcurl and curl examples for make run in README.md, want at least 15: is the parser broken?", n)
	}
	if !slices.ContainsFunc(blocks[0].prelude, func(p string) bool { return p == "export PATH=$PWD/.cache/bin:$PATH" }) {
		t.Errorf("README.md:%d: the first examples do not put .cache/bin on the PATH (export PATH=$PWD/.cache/bin:$PATH), where make tools installs grpcurl", blocks[0].line)
	}
	grpcAddr, httpAddr := startMakeRun(t)
	var problems []string
	for _, b := range blocks {
		for i, got := range runBlock(t, b, grpcAddr, httpAddr) {
			problems = append(problems, checkExample(b.examples[i], got)...)
		}
	}
	if len(problems) > 0 {
		t.Errorf("README.md's examples do not answer what README.md says against make run (fix the example or what it shows):\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("%d examples in %d blocks ran as README.md says", n, len(blocks))
}

func TestReadmeExamplesParser(t *testing.T) {
	doc := "```sh\nexport PATH=$PWD/.cache/bin:$PATH\nexport RECO_X=1\n\ngrpcurl -plaintext 127.0.0.1:9999 list\n# A\n# b.C\n\n" +
		"now=$(date +%s%3N)\ngrpcurl -plaintext -d \"{\\\"t\\\": $now}\" \\\n  127.0.0.1:9999 X/y\n# ERROR: Code: NotFound  Message: gone\n" +
		"grpcurl -plaintext 127.0.0.1:10002 list\ncurl -s --data-binary @- http://127.0.0.1:9998/v1/actions <<'EOF'\n{\"a\": 1}\nEOF\n# {\"accepted\":1}\n" +
		"grpcurl -cacert ca.crt localhost:9999 list\n```\n"
	blocks := readmeExamples(doc)
	if len(blocks) != 1 {
		t.Fatalf("blocks = %+v, want 1", blocks)
	}
	b := blocks[0]
	if want := []string{"export PATH=$PWD/.cache/bin:$PATH", "now=$(date +%s%3N)"}; !slices.Equal(b.prelude, want) {
		t.Errorf("prelude = %q, want %q", b.prelude, want)
	}
	var cmds []string
	for _, ex := range b.examples {
		cmds = append(cmds, ex.cmd+" => "+strings.Join(ex.want, "|"))
	}
	want := []string{
		"grpcurl -plaintext 127.0.0.1:9999 list => A|b.C",
		"grpcurl -plaintext -d \"{\\\"t\\\": $now}\" \\\n  127.0.0.1:9999 X/y => ERROR: Code: NotFound  Message: gone",
		"curl -s --data-binary @- http://127.0.0.1:9998/v1/actions <<'EOF'\n{\"a\": 1}\nEOF => {\"accepted\":1}",
	}
	if !slices.Equal(cmds, want) {
		t.Errorf("examples =\n%q\nwant\n%q", cmds, want)
	}
	for _, c := range []struct {
		ex   example
		got  outcome
		fine bool
	}{
		{example{cmd: "grpcurl x list", want: []string{"A", "b.C"}}, outcome{output: "A\nb.C"}, true},
		{example{cmd: "grpcurl x list", want: []string{"A", "b.C"}}, outcome{output: "A\nb.C\nd.E"}, false},
		{example{cmd: "grpcurl y", want: []string{"ERROR: Code: NotFound  Message: gone"}}, outcome{exit: 1, output: "ERROR:\n  Code: NotFound\n  Message: gone"}, true},
		{example{cmd: "grpcurl y", want: []string{"ERROR: Code: NotFound  Message: gone"}}, outcome{output: "{}"}, false},
		{example{cmd: "grpcurl y", want: []string{`{ "articleId": [ "1", "2" ] }`}}, outcome{output: "{\n  \"articleId\": [\n    \"1\",\n    \"2\"\n  ]\n}"}, true},
		{example{cmd: "grpcurl y", want: []string{`{ "articleId": [ "1", "3" ] }`}}, outcome{output: `{"articleId": ["1", "2"]}`}, false},
		{example{cmd: "curl y", want: []string{`{"e":"x", "r": [...]}`, ``}}, outcome{output: `{"e":"x","r":[1]}`, httpCode: 200}, true},
		{example{cmd: "curl y", want: []string{"HTTP/1.1 400 Bad Request", `{"code":3}`}}, outcome{output: "HTTP/1.1 400 Bad Request\r\nA: b\r\n\r\n{\"code\":3}", httpCode: 400}, true},
		{example{cmd: "curl y"}, outcome{output: "nope", httpCode: 404}, false},
		{example{cmd: "grpcurl y"}, outcome{exit: 1}, false},
	} {
		if problems := checkExample(c.ex, c.got); (len(problems) == 0) != c.fine {
			t.Errorf("checkExample(%+v, %+v) = %q, want fine: %v", c.ex, c.got, problems, c.fine)
		}
	}
}
