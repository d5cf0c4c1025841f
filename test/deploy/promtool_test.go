package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// alertsTestFile holds promtool's unit tests of alertsFile.
const alertsTestFile = "deploy/prometheus/alerts_test.yml"

// promtool finds Prometheus's promtool: on the PATH, or where
// scripts/promtool.sh (make test) unpacks it.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if p := repoPath(".cache", "bin", "promtool"); isExecutable(p) {
		return p
	}
	integration(t, "promtool is not installed (scripts/promtool.sh install, which make test runs)")
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// TestAlertRulesWithPromtool runs Prometheus's own checks on the rule file
// (`promtool check rules`: what Prometheus refuses to load) and the rule unit
// tests of alerts_test.yml (`promtool test rules`: each alert fires on the
// series it is for, with the labels and annotations a notification shows, and
// stays quiet on the others), and fails when an alert has no unit test.
func TestAlertRulesWithPromtool(t *testing.T) {
	bin := promtool(t)
	dir := repoPath("deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertsFile)},
		{"test", "rules", filepath.Base(alertsTestFile)},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cd deploy/prometheus && promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var tests struct {
		RuleFiles          []string `yaml:"rule_files"`
		EvaluationInterval string   `yaml:"evaluation_interval"`
		Tests              []struct {
			Interval    string `yaml:"interval"`
			InputSeries []struct {
				Series string `yaml:"series"`
				Values string `yaml:"values"`
			} `yaml:"input_series"`
			AlertRuleTests []struct {
				EvalTime  string `yaml:"eval_time"`
				AlertName string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpLabels      map[string]string `yaml:"exp_labels"`
					ExpAnnotations map[string]string `yaml:"exp_annotations"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
			PromQLExprTests []struct {
				Expr       string `yaml:"expr"`
				EvalTime   string `yaml:"eval_time"`
				ExpSamples []struct {
					Labels string  `yaml:"labels"`
					Value  float64 `yaml:"value"`
				} `yaml:"exp_samples"`
			} `yaml:"promql_expr_test"`
		} `yaml:"tests"`
	}
	decodeStrict(t, alertsTestFile, &tests)
	if len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != filepath.Base(alertsFile) {
		t.Errorf("%s: rule_files %v, want [%s]", alertsTestFile, tests.RuleFiles, filepath.Base(alertsFile))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				quiet[a.AlertName] = true
			}
		}
	}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: alert %s needs a test where it fires (exp_alerts) and one where it does not (fires: %v, quiet: %v)", alertsTestFile, r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
}
