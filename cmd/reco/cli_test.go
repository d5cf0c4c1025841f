package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/buildinfo"
)

// commandFlags are the flags each command has. `reco COMMAND -h` must list
// exactly these: a flag added to a command is added here, with the usage
// that shows it.
var commandFlags = map[string][]string{
	"serve":           {"config", "target"},
	"admin bootstrap": {"config"},
	"admin generate":  {"articles", "days", "impressions", "out", "seed", "users"},
	"admin build":     {"build-time", "config", "data", "fresh-days", "holdout-days", "models", "seed", "skip-unknown", "stats"},
	"admin demo":      {"config", "models"},
	"admin publish":   {"config", "file", "models"},
	"admin ab-report": {"config", "control", "json", "mde", "strategies"},
	"admin inspect":   {"channel", "config", "ids", "json", "refreshes", "strategies", "user"},
	"health":          {"addr", "server-name", "service", "timeout"},
	"config env":      nil,
	"version":         nil,
}

// usageFlag is a flag's line in a usage (flag.PrintDefaults).
var usageFlag = regexp.MustCompile(`(?m)^  -([a-z-]+)`)

// TestEveryCommandHelp: -h and --help succeed on every command, print its
// usage line and every one of its flags to stdout, and run nothing.
func TestEveryCommandHelp(t *testing.T) {
	for _, c := range commands() {
		want, ok := commandFlags[c.name]
		if !ok {
			t.Errorf("command %q has no entry in commandFlags", c.name)
		}
		for _, help := range []string{"-h", "--help"} {
			var out bytes.Buffer
			args := append(strings.Fields(c.name), help)
			if err := run(args, &out); err != nil {
				t.Errorf("reco %s: %v, want success", strings.Join(args, " "), err)
				continue
			}
			if !strings.HasPrefix(out.String(), "usage: reco "+c.name) {
				t.Errorf("reco %s printed %q, want it to start with the usage line", strings.Join(args, " "), out.String())
			}
			var got []string
			for _, m := range usageFlag.FindAllStringSubmatch(out.String(), -1) {
				got = append(got, m[1])
			}
			if !slices.Equal(got, want) {
				t.Errorf("reco %s lists flags %v, want %v:\n%s", strings.Join(args, " "), got, want, &out)
			}
		}
	}
	for name := range commandFlags {
		if !slices.ContainsFunc(commands(), func(c command) bool { return c.name == name }) {
			t.Errorf("commandFlags names %q, which is no command", name)
		}
	}
}

// TestUsageListsTheCommands: reco -h lists every command, reco admin -h
// those of the group, both on stdout and successfully.
func TestUsageListsTheCommands(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out bytes.Buffer
		if err := run(args, &out); err != nil {
			t.Fatalf("reco %s: %v", args[0], err)
		}
		for _, c := range commands() {
			if !strings.Contains(out.String(), "  reco "+c.name) {
				t.Errorf("reco %s does not list %q:\n%s", args[0], c.name, &out)
			}
		}
	}
	for _, group := range []string{"admin", "config"} {
		var out bytes.Buffer
		if err := run([]string{group, "-h"}, &out); err != nil {
			t.Fatalf("reco %s -h: %v", group, err)
		}
		for _, c := range commands() {
			if listed := strings.Contains(out.String(), "  reco "+c.name); listed != strings.HasPrefix(c.name, group+" ") {
				t.Errorf("reco %s -h lists %q: %v, want %v:\n%s", group, c.name, listed, !listed, &out)
			}
		}
	}
}

// TestUsageErrors: a command line that does not parse is a usageError that
// carries the usage of what was meant, and runs nothing.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args      []string
		message   string
		usageHead string
	}{
		{nil, "no command given", "usage:\n  reco serve"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`, "usage:\n  reco serve"},
		{[]string{"admin"}, "admin needs a command", "usage:\n  reco admin bootstrap"},
		{[]string{"admin", "frobnicate"}, `unknown admin command "frobnicate"`, "usage:\n  reco admin bootstrap"},
		{[]string{"serve", "--bogus"}, "serve: flag provided but not defined: -bogus", "usage: reco serve"},
		{[]string{"admin", "generate", "--users", "many"}, "admin generate: invalid value", "usage: reco admin generate"},
		{[]string{"config", "env", "extra"}, `config env: unexpected argument "extra"`, "usage: reco config env"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(tt.args, &out)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.Error(), tt.message) || !strings.HasPrefix(ue.usage, tt.usageHead) {
			t.Errorf("reco %q: %v, want a usage error %q with a usage starting %q", tt.args, err, tt.message, tt.usageHead)
		}
		if out.Len() != 0 {
			t.Errorf("reco %q printed %q on stdout", tt.args, &out)
		}
	}
}

// TestExitCodes runs the binary: help and version exit 0 with their text on
// stdout, a command line that does not parse exits 2 with the usage on
// stderr.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stdout     string
		stderrHead string
	}{
		{[]string{"--help"}, 0, "usage:\n  reco serve", ""},
		{[]string{"admin", "build", "-h"}, 0, "usage: reco admin build", ""},
		{[]string{"--version"}, 0, buildinfo.Get().String() + "\n", ""},
		{[]string{"version"}, 0, buildinfo.Get().String() + "\n", ""},
		{nil, 2, "", "reco: no command given\n\nusage:\n"},
		{[]string{"admin", "generate", "--nope"}, 2, "", "reco: admin generate: flag provided but not defined: -nope\n\nusage: reco admin generate"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		cmd := recoCommand(context.Background(), nil, tt.args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || !strings.HasPrefix(stdout.String(), tt.stdout) || !strings.HasPrefix(stderr.String(), tt.stderrHead) {
			t.Errorf("reco %q: exit %d, stdout %q, stderr %q; want exit %d, stdout starting %q, stderr starting %q",
				tt.args, code, &stdout, &stderr, tt.code, tt.stdout, tt.stderrHead)
		}
	}
}

// TestVersionFromMakefileLdflags builds reco with the -ldflags of the
// Makefile's build target and checks that --version reports what they set.
func TestVersionFromMakefileLdflags(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LDFLAGS\s*:=\s*(.+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no LDFLAGS := line")
	}
	if !regexp.MustCompile(`(?m)^\s+go build -ldflags '\$\(LDFLAGS\)' -o bin/reco ./cmd/reco$`).Match(mk) {
		t.Error("the Makefile's build target does not link with $(LDFLAGS)")
	}
	ldflags := strings.NewReplacer("$(VERSION)", "v9.8.7-test", "$(COMMIT)", "0123abcd4567").Replace(string(m[1]))
	bin := filepath.Join(t.TempDir(), "reco")
	build := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags %q: %v\n%s", ldflags, err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "reco v9.8.7-test (commit 0123abcd4567, " + buildinfo.Get().GoVersion + ")\n"; string(out) != want {
		t.Errorf("reco --version = %q, want %q", out, want)
	}
}
