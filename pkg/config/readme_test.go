package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// readmeTable is the header of README.md's configuration table.
const readmeTable = "| key | env | default | meaning |"

// readmeRow is one row of the configuration table: its line number and the
// first three cells, trimmed.
type readmeRow struct {
	line            int
	key, env, deflt string
	keyOK, envOK    bool // whether the cell is one code span
}

// codeSpan returns the text of a cell that is exactly one `code span`.
func codeSpan(cell string) (string, bool) {
	if len(cell) < 2 || cell[0] != '`' || cell[len(cell)-1] != '`' || strings.Count(cell, "`") != 2 {
		return "", false
	}
	return cell[1 : len(cell)-1], true
}

// parseReadmeTable returns the rows of the table under "## Configuration".
func parseReadmeTable(t *testing.T, readme string) []readmeRow {
	t.Helper()
	lines := strings.Split(readme, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "## Configuration" {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatal("README.md has no \"## Configuration\" section")
	}
	header := -1
	for i := start + 1; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
		if strings.TrimSpace(lines[i]) == readmeTable {
			header = i
			break
		}
	}
	if header < 0 {
		t.Fatalf("README.md's Configuration section has no table headed %q", readmeTable)
	}
	var rows []readmeRow
	for i := header + 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		cells := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(lines[i]), "|"), "|", 4)
		if len(cells) < 4 {
			t.Errorf("README.md:%d: a row of the configuration table needs four cells: %s", i+1, lines[i])
			continue
		}
		r := readmeRow{line: i + 1}
		r.key, r.keyOK = codeSpan(strings.TrimSpace(cells[0]))
		r.env, r.envOK = codeSpan(strings.TrimSpace(cells[1]))
		r.deflt = strings.TrimSpace(cells[2])
		rows = append(rows, r)
	}
	return rows
}

// defaultCell is how the table shows a default: as code, or (none) when empty.
func defaultCell(v string) string {
	if v == "" {
		return "(none)"
	}
	return "`" + v + "`"
}

// TestReadmeConfigTable checks README.md's configuration table against the code:
// one row per key of EnvTable, with its variable and its config.Default() value.
func TestReadmeConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := parseReadmeTable(t, string(b))
	cfg := Default()
	table := EnvTable(&cfg)
	byKey := map[string]EnvVar{}
	for _, e := range table {
		byKey[e.Key] = e
	}

	var problems []string
	seen := map[string]int{}
	for _, r := range rows {
		if !r.keyOK {
			problems = append(problems, fmt.Sprintf("README.md:%d: the key cell must be one key in backticks (a row per key, no lists or wildcards)", r.line))
			continue
		}
		e, ok := byKey[r.key]
		if !ok {
			problems = append(problems, fmt.Sprintf("README.md:%d: %s is not a config key (see `reco config env`): remove its row", r.line, r.key))
			continue
		}
		if prev, dup := seen[r.key]; dup {
			problems = append(problems, fmt.Sprintf("README.md:%d: %s already has a row at line %d: remove one", r.line, r.key, prev))
			continue
		}
		seen[r.key] = r.line
		if !r.envOK || r.env != e.Env {
			problems = append(problems, fmt.Sprintf("README.md:%d: %s is set by `%s`; the env cell must be exactly that", r.line, e.Key, e.Env))
		}
		v := e.Value()
		if got, code := codeSpan(r.deflt); v == "" && code || v != "" && (!code || got != v) {
			problems = append(problems, fmt.Sprintf("README.md:%d: %s defaults to %s in config.Default(); the default cell reads %s", r.line, e.Key, defaultCell(v), r.deflt))
		}
	}
	for _, e := range table {
		if _, ok := seen[e.Key]; !ok {
			problems = append(problems, fmt.Sprintf("README.md: %s has no row; add\n\t| `%s` | `%s` | %s | <what it means> |", e.Key, e.Key, e.Env, defaultCell(e.Value())))
		}
	}
	if len(problems) > 0 {
		t.Errorf("README.md's configuration table (under \"## Configuration\") must list every key of config.Default(), one a row, "+
			"with its environment variable and its default (an empty default is plain text, such as (none)); fix README.md:\n%s", strings.Join(problems, "\n"))
	}
}

func TestParseReadmeTable(t *testing.T) {
	readme := "# x\n\n## Configuration\n\ntext\n\n" + readmeTable + "\n|---|---|---|---|\n" +
		"| `log.level` | `RECO_LOG_LEVEL` | `info` | the level | with a pipe |\n" +
		"| `a`, `b` | `RECO_A` … | | list |\n" +
		"| `routing.strategies_file` | `RECO_ROUTING_STRATEGIES_FILE` | (none) | plan |\n" +
		"\nafter\n\n## Next\n\n" + readmeTable + "\n|---|---|---|---|\n| `not.this` | `RECO_NOT_THIS` | `1` | x |\n"
	rows := parseReadmeTable(t, readme)
	want := []readmeRow{
		{line: 9, key: "log.level", env: "RECO_LOG_LEVEL", deflt: "`info`", keyOK: true, envOK: true},
		{line: 10, deflt: ""},
		{line: 11, key: "routing.strategies_file", env: "RECO_ROUTING_STRATEGIES_FILE", deflt: "(none)", keyOK: true, envOK: true},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
}
