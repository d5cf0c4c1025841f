package deploy

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
	promlabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// The rule file format of Prometheus (rule_files), as much of it as the
// deployments use; strict decoding catches a misspelt key. The json tags are
// for the PrometheusRule, whose spec.groups is the same structure.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups" json:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name" json:"name"`
	Interval string `yaml:"interval,omitempty" json:"interval,omitempty"`
	Rules    []rule `yaml:"rules" json:"rules"`
}

type rule struct {
	Record        string            `yaml:"record,omitempty" json:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty" json:"alert,omitempty"`
	Expr          string            `yaml:"expr" json:"expr"`
	For           string            `yaml:"for,omitempty" json:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty" json:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

const alertsFile = "deploy/prometheus/alerts.yml"

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var f ruleFile
	decodeStrict(t, alertsFile, &f)
	if len(f.Groups) == 0 {
		t.Fatalf("%s has no rule groups", alertsFile)
	}
	return f
}

// parsedRules parses every expr of the rule file, failing on one that does
// not parse.
func parsedRules(t *testing.T, f ruleFile) map[*rule]parser.Expr {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	out := map[*rule]parser.Expr{}
	for gi := range f.Groups {
		for ri := range f.Groups[gi].Rules {
			r := &f.Groups[gi].Rules[ri]
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("%s: rule %s%s: expr does not parse: %v\n%s", alertsFile, r.Record, r.Alert, err, r.Expr)
				continue
			}
			out[r] = expr
		}
	}
	return out
}

// recordedNames are the series the rule file's recording rules write.
func recordedNames(f ruleFile) map[string]bool {
	names := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				names[r.Record] = true
			}
		}
	}
	return names
}

var (
	// Recording rules are named level:metric:operations.
	recordName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_:]+$`)
	alertName  = regexp.MustCompile(`^Reco[A-Z][A-Za-z0-9]*$`)
)

// prometheusTemplateFuncs are the functions Prometheus gives alert templates;
// stubs are enough to parse them.
var prometheusTemplateFuncs = func() template.FuncMap {
	m := template.FuncMap{}
	for _, name := range []string{"query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml", "match", "title", "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel", "humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "toTime", "toDuration", "pathPrefix", "externalURL", "parseDuration", "stripPort", "stripDomain", "now"} {
		m[name] = func(...any) string { return "" }
	}
	return m
}()

// templateHeader defines the variables Prometheus defines for alert templates.
const templateHeader = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"

// TestAlertRules checks deploy/prometheus/alerts.yml as Prometheus loads it
// (strict format, every expr parsed by Prometheus's parser, templates parsed),
// the rules an operator relies on and their thresholds, that Prometheus loads
// the file, and that the PrometheusRule of deploy/k8s/monitoring carries the
// same groups. TestDashboard checks that every metric the rules select is one
// the services export.
func TestAlertRules(t *testing.T) {
	f := loadRules(t)
	exprs := parsedRules(t, f)
	if !slices.Contains(ruleFiles(t), "/etc/prometheus/"+strings.TrimPrefix(alertsFile, "deploy/prometheus/")) {
		t.Errorf("prometheus.yml rule_files %v does not load %s", ruleFiles(t), alertsFile)
	}

	rules := map[string]*rule{}
	groups := map[string]bool{}
	for gi, g := range f.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("rule group %d: name %q is empty or used twice", gi, g.Name)
		}
		groups[g.Name] = true
		if g.Interval != "" {
			if _, err := model.ParseDuration(g.Interval); err != nil {
				t.Errorf("group %s: interval %q: %v", g.Name, g.Interval, err)
			}
		}
		for ri := range g.Rules {
			r := &f.Groups[gi].Rules[ri]
			name := r.Record + r.Alert
			where := fmt.Sprintf("group %s rule %s", g.Name, name)
			if (r.Record == "") == (r.Alert == "") {
				t.Errorf("%s: a rule is either record or alert, not %q and %q", where, r.Record, r.Alert)
			}
			if rules[name] != nil {
				t.Errorf("%s is defined twice", where)
			}
			rules[name] = r
			if r.Record != "" {
				if !recordName.MatchString(r.Record) || r.For != "" || len(r.Annotations) > 0 {
					t.Errorf("%s: a recording rule is named level:metric:operations and has no for or annotations", where)
				}
				continue
			}
			if !alertName.MatchString(r.Alert) {
				t.Errorf("%s: alert names are Reco followed by CamelCase", where)
			}
			for _, d := range []string{r.For, r.KeepFiringFor} {
				if d != "" {
					if _, err := model.ParseDuration(d); err != nil {
						t.Errorf("%s: duration %q: %v", where, d, err)
					}
				}
			}
			if !slices.Contains([]string{"info", "warning", "critical"}, r.Labels["severity"]) || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: labels %v, annotations %v; want a severity (info, warning, critical), a summary and a description", where, r.Labels, r.Annotations)
			}
			for k, v := range r.Annotations {
				if _, err := template.New(k).Funcs(prometheusTemplateFuncs).Parse(templateHeader + v); err != nil {
					t.Errorf("%s: annotation %s does not parse as a template: %v", where, k, err)
				}
			}
			// A threshold annotation names the number the expr compares with.
			if th, ok := r.Annotations["threshold"]; ok && exprs[r] != nil {
				v, err := strconv.ParseFloat(th, 64)
				if err != nil || !slices.Contains(comparedWith(exprs[r]), v) {
					t.Errorf("%s: threshold annotation %q is not a number the expr compares with (%v): edit both", where, th, comparedWith(exprs[r]))
				}
			}
		}
	}

	need := func(name string) (*rule, parser.Expr) {
		t.Helper()
		r := rules[name]
		if r == nil || exprs[r] == nil {
			t.Fatalf("%s has no valid rule %s", alertsFile, name)
		}
		return r, exprs[r]
	}

	t.Run("live CTR per strategy", func(t *testing.T) {
		_, e := need("reco:ctr:rate5m")
		div, ok := e.(*parser.BinaryExpr)
		if !ok || div.Op != parser.DIV {
			t.Fatalf("reco:ctr:rate5m = %s, want clicks / exposures", e)
		}
		if want := `sum by (strategy) (rate(reco_actions_total{action="exposure"}[5m]))`; div.RHS.String() != want {
			t.Errorf("reco:ctr:rate5m divides by %s, want %s", div.RHS, want)
		}
		if !selects(div.LHS, "reco_actions_total", "action", "click") || !groupsBy(div.LHS, "strategy") {
			t.Errorf("reco:ctr:rate5m's numerator %s is not the clicks per strategy", div.LHS)
		}
	})

	t.Run("CTR alert", func(t *testing.T) {
		r, e := need("RecoCTRLow")
		if r.For != "10m" {
			t.Errorf("RecoCTRLow: for %q, want 10m", r.For)
		}
		th := threshold(e, "reco:ctr:rate5m", parser.LSS)
		if th <= 0 || th >= 1 {
			t.Errorf("RecoCTRLow = %s: want reco:ctr:rate5m < a CTR between 0 and 1 (seed 000: 0.03)", e)
		}
	})

	t.Run("nearline alerts", func(t *testing.T) {
		r, e := need("RecoNearlineLagging")
		if r.For != "5m" || !selects(e, "reco_nearline_action_age_seconds_bucket", "", "") {
			t.Errorf("RecoNearlineLagging: for %q, expr %s; want the action age's p99 for 5m", r.For, e)
		}
		if th := threshold(e, "histogram_quantile", parser.GTR); th <= 0 {
			t.Errorf("RecoNearlineLagging = %s: want histogram_quantile(0.99, …) > seconds", e)
		} else if q := quantileOf(e); q != 0.99 {
			t.Errorf("RecoNearlineLagging takes quantile %v, want 0.99", q)
		}
		_, e = need("RecoNearlineBadLines")
		if !selects(e, "reco_nearline_bad_lines_total", "", "") || threshold(e, "sum", parser.GTR) != 0 {
			t.Errorf("RecoNearlineBadLines = %s: want the rate of reco_nearline_bad_lines_total > 0", e)
		}
	})

	t.Run("CTR drop alert", func(t *testing.T) {
		r, e := need("RecoCTRDropped")
		if r.For == "" || !strings.Contains(e.String(), "reco:ctr:rate1h offset 1d") {
			t.Errorf("RecoCTRDropped = %s, for %q: want the hour's CTR against the same hour a day before, for a while", e, r.For)
		}
		if !slices.ContainsFunc(comparedWith(e), func(v float64) bool { return v > 0 && v < 1 }) {
			t.Errorf("RecoCTRDropped = %s: want today / yesterday < a share between 0 and 1", e)
		}
		_, e = need("reco:ctr:rate1h")
		if !selects(e, "reco_actions_total", "action", "click") || !groupsBy(e, "strategy") {
			t.Errorf("reco:ctr:rate1h = %s: want the clicks / exposures per strategy", e)
		}
	})

	t.Run("latency, error and degradation alerts", func(t *testing.T) {
		_, e := need("grpc_service:reco_grpc_server_handling_seconds:p99_rate5m")
		if q := quantileOf(e); q != 0.99 || !selects(e, "reco_grpc_server_handling_seconds_bucket", "grpc_type", "unary") {
			t.Errorf("the latency record %s: want the p99 (got quantile %v) of unary calls", e, q)
		}
		_, e = need("grpc_service:reco_grpc_server_errors:ratio_rate5m")
		if !selects(e, "reco_grpc_server_handled_total", "", "") || !groupsBy(e, "grpc_service") {
			t.Errorf("the error record %s: want reco_grpc_server_handled_total per grpc_service", e)
		}
		_, e = need("cause:reco_feed_degradations:ratio_rate5m")
		if !selects(e, "reco_feed_degradations_total", "", "") || !selects(e, "reco_grpc_server_handled_total", "grpc_method", "user_recommend") {
			t.Errorf("the degradation record %s: want degradations per user_recommend call", e)
		}
		for _, c := range []struct {
			alert, record string
			max           float64
		}{
			{"RecoLatencyHigh", "grpc_service:reco_grpc_server_handling_seconds:p99_rate5m", 2.5}, // the histogram's last bucket
			{"RecoErrorsHigh", "grpc_service:reco_grpc_server_errors:ratio_rate5m", 1},
			{"RecoFeedDegraded", "cause:reco_feed_degradations:ratio_rate5m", 1},
		} {
			r, e := need(c.alert)
			if th := threshold(e, c.record, parser.GTR); th <= 0 || th >= c.max || r.For == "" {
				t.Errorf("%s = %s, for %q: want %s > a number in (0, %v), for a while", c.alert, e, r.For, c.record, c.max)
			}
		}
		_, e = need("RecoHistoryWriteFailures")
		if !selects(e, "reco_history_write_failures_total", "", "") || threshold(e, "sum", parser.GTR) != 0 {
			t.Errorf("RecoHistoryWriteFailures = %s: want any increase of reco_history_write_failures_total", e)
		}
	})

	t.Run("the PrometheusRule carries the same rules", func(t *testing.T) {
		var pr struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
			Spec       ruleFile          `json:"spec"`
		}
		const rel = "deploy/k8s/monitoring/prometheusrule.yaml"
		if err := sigsyaml.UnmarshalStrict(readRepoFile(t, rel), &pr); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
			t.Errorf("%s: %s %s %q, want a monitoring.coreos.com/v1 PrometheusRule", rel, pr.APIVersion, pr.Kind, pr.Metadata.Name)
		}
		if !reflect.DeepEqual(pr.Spec.Groups, f.Groups) {
			t.Errorf("%s spec.groups differ from %s's groups: edit both", rel, alertsFile)
		}
		var k struct {
			APIVersion string   `yaml:"apiVersion"`
			Kind       string   `yaml:"kind"`
			Resources  []string `yaml:"resources"`
		}
		decodeStrict(t, "deploy/k8s/monitoring/kustomization.yaml", &k)
		if !slices.Contains(k.Resources, "prometheusrule.yaml") {
			t.Errorf("deploy/k8s/monitoring/kustomization.yaml resources %v lack prometheusrule.yaml", k.Resources)
		}
	})
}

// selects reports whether expr selects metric, with label=value when label is
// set.
func selects(expr parser.Expr, metric, label, value string) bool {
	found := false
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok || vs.Name != metric {
			return nil
		}
		if label == "" {
			found = true
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == label && m.Type == promlabels.MatchEqual && m.Value == value {
				found = true
			}
		}
		return nil
	})
	return found
}

// groupsBy reports whether expr's outermost aggregation keeps exactly label.
func groupsBy(expr parser.Expr, label string) bool {
	for {
		switch e := expr.(type) {
		case *parser.ParenExpr:
			expr = e.Expr
		case *parser.BinaryExpr:
			expr = e.LHS
		case *parser.AggregateExpr:
			return !e.Without && slices.Equal(e.Grouping, []string{label})
		default:
			return false
		}
	}
}

// comparedWith lists the numbers expr's comparisons compare with.
func comparedWith(expr parser.Expr) []float64 {
	var out []float64
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if b, ok := node.(*parser.BinaryExpr); ok && b.Op.IsComparisonOperator() {
			if n, ok := unparen(b.RHS).(*parser.NumberLiteral); ok {
				out = append(out, n.Val)
			}
		}
		return nil
	})
	return out
}

// threshold is the number of the comparison `lhs op N` in expr, where lhs is
// a selector of that name, a call of that function or an aggregation of that
// operator; -1 when there is none.
func threshold(expr parser.Expr, lhs string, op parser.ItemType) float64 {
	th := -1.0
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		b, ok := node.(*parser.BinaryExpr)
		if !ok || b.Op != op {
			return nil
		}
		n, ok := unparen(b.RHS).(*parser.NumberLiteral)
		if !ok {
			return nil
		}
		switch l := unparen(b.LHS).(type) {
		case *parser.VectorSelector:
			ok = l.Name == lhs
		case *parser.Call:
			ok = l.Func.Name == lhs
		case *parser.AggregateExpr:
			ok = l.Op.String() == lhs
		default:
			ok = false
		}
		if ok {
			th = n.Val
		}
		return nil
	})
	return th
}

// quantileOf is the quantile of expr's histogram_quantile, 0 without one.
func quantileOf(expr parser.Expr) float64 {
	q := 0.0
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if c, ok := node.(*parser.Call); ok && c.Func.Name == "histogram_quantile" {
			if n, ok := unparen(c.Args[0]).(*parser.NumberLiteral); ok {
				q = n.Val
			}
		}
		return nil
	})
	return q
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}
