package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/toutiao-reco/toutiao-reco/pkg/buildinfo"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// command is one `reco` command: its words, what its usage line shows after
// them, what it does, and its code, which defines its flags on a FlagSet
// named by the words and parses them with parseFlags.
type command struct {
	name     string
	synopsis string
	summary  string
	run      func(args []string, stdout io.Writer) error
}

// commands are every command, in the order the usage lists them. (A function,
// not a variable: the commands' code reads the table through parseFlags.)
func commands() []command {
	return []command{
		{"serve", "[--config FILE] [--target all|LIST]", "serve the suite: every service, or those of --target (routing, recocenter, recall, sort, cache)", serve},
		{"admin bootstrap", "[--config FILE]", "create the HBase tables (idempotent)", bootstrap},
		{"admin generate", "--out DIR [flags]", "write a synthetic data set in MIND's layout", adminGenerate},
		{"admin build", "--data DIR --models DIR [flags]", "build recall, similarity, features and models from MIND files into the configured store", adminBuild},
		{"admin publish", "--models DIR [--file news.tsv] [--config FILE]", "publish new articles (news.tsv lines; default stdin) with the last build's models: features, similar articles, new lists", adminPublish},
		{"admin ab-report", "[--strategies FILE] [--control NAME] [--mde 0.05] [--json]", "read the A/B test out: CTR, lift, sample ratio and users needed per layer and variant", adminABReport},
		{"admin inspect", "--user ID [--channel 0] [--refreshes 3] [--ids 50] [--strategies FILE] [--json] [--config FILE]", "look inside one reader's feed, read-only: strategy and A/B buckets, last refreshes, both cache tiers, seen sets, profile weights", adminInspect},
		{"admin demo", "--models DIR [--config FILE]", "build demo data if the store is empty (make run)", adminDemo},
		{"health", "[--addr HOST:PORT] [--service NAME] [flags]", "exit 0 if the server answers SERVING (container healthchecks)", healthCheck},
		{"config env", "", "list every config key with its environment variable", configEnv},
		{"version", "", "print the version, commit and Go version of this build (also: reco --version)", version},
	}
}

// errHelp is returned by a command whose -h printed its usage: run answers
// it with success.
var errHelp = errors.New("help requested")

// usageError is a command line that does not parse. main prints it with the
// usage of the command (or group) and exits 2, as flag does.
type usageError struct {
	err   error
	usage string
}

func (e *usageError) Error() string { return e.err.Error() }

func (e *usageError) Unwrap() error { return e.err }

// run runs the command args name; -h, --help or help print the usage of the
// whole, of a group (reco admin -h) or of one command, to stdout.
func run(args []string, stdout io.Writer) error {
	if err := dispatch(args, stdout); !errors.Is(err, errHelp) {
		return err
	}
	return nil
}

func dispatch(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return &usageError{errors.New("no command given"), usage("")}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage(""))
		return nil
	case "-version", "--version":
		return version(nil, stdout)
	}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c.run(args[len(words):], stdout)
		}
	}
	group := args[0]
	if !slices.ContainsFunc(commands(), func(c command) bool { return strings.HasPrefix(c.name, group+" ") }) {
		return &usageError{fmt.Errorf("unknown command %q", group), usage("")}
	}
	switch {
	case len(args) == 1:
		return &usageError{fmt.Errorf("%s needs a command", group), usage(group)}
	case isHelp(args[1]):
		fmt.Fprint(stdout, usage(group))
		return nil
	}
	return &usageError{fmt.Errorf("unknown %s command %q", group, args[1]), usage(group)}
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// usage lists the commands of group ("" for all).
func usage(group string) string {
	var b strings.Builder
	b.WriteString("usage:\n")
	for _, c := range commands() {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(&b, "  reco %s\n", strings.TrimSpace(c.name+" "+c.synopsis))
			fmt.Fprintf(&b, "      %s\n", c.summary)
		}
	}
	b.WriteString("\n`reco COMMAND -h` lists the flags of a command; `reco --version` prints the build.\n")
	return b.String()
}

// commandUsage is the usage of one command: its line, what it does, and
// every flag it defines.
func commandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: reco %s\n\n%s\n", strings.TrimSpace(c.name+" "+c.synopsis), c.summary)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nflags:")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
}

// parseFlags parses the flags of the command fs is named after. -h prints
// the command's usage to stdout and returns errHelp; a flag that does not
// parse, or an argument that is not a flag, is a usageError.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	i := slices.IndexFunc(commands(), func(c command) bool { return c.name == fs.Name() })
	if i < 0 {
		return fmt.Errorf("flags of %q: no such command", fs.Name()) // a wiring mistake of this file
	}
	c := commands()[i]
	var printed strings.Builder
	fs.SetOutput(io.Discard) // the error comes back from Parse; the usage is printed here
	fs.Usage = func() { commandUsage(&printed, c, fs) }
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, printed.String())
		return errHelp
	case err == nil && fs.NArg() > 0:
		commandUsage(&printed, c, fs)
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		return &usageError{fmt.Errorf("%s: %w", c.name, err), printed.String()}
	}
	return nil
}

// configEnv is `reco config env`.
func configEnv(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config env", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg := config.Default()
	for _, e := range config.EnvTable(&cfg) {
		fmt.Fprintf(stdout, "%-36s %s\n", e.Key, e.Env)
	}
	return nil
}

// version is `reco version` and `reco --version`.
func version(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, buildinfo.Get())
	return nil
}
