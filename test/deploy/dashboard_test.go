package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
)

// dashboardDatasourceUID is the uid the provisioned datasource has and every
// panel names.
const dashboardDatasourceUID = "prometheus"

type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readRepoFile(t, "deploy/grafana/dashboards/reco.json"), &d); err != nil {
		t.Fatalf("reco.json: %v", err)
	}
	return d
}

// queryPanels flattens rows into the panels that carry queries.
func queryPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, queryPanels(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// allPanels flattens rows into their panels, keeping the rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// grafanaVariables are the variables Grafana substitutes before Prometheus sees
// a query; the parser gets a value of the same kind.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// targetLabels are added by Prometheus at scrape time, not by the services.
var targetLabels = map[string]bool{"job": true, "instance": true}

// series is one sample line of a scrape: its name and labels.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads addr's /metrics into samples, histograms expanded into their
// _bucket, _sum and _count series as PromQL sees them.
func scrape(t *testing.T, addr string) []series {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read whole below: closing loses nothing
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var out []series
	for name, f := range families {
		for _, m := range f.GetMetric() {
			base := map[string]string{}
			for _, l := range m.GetLabel() {
				base[l.GetName()] = l.GetValue()
			}
			with := func(k, v string) map[string]string {
				c := map[string]string{k: v}
				for bk, bv := range base {
					c[bk] = bv
				}
				return c
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out = append(out, series{name, base, m.GetCounter().GetValue()})
			case dto.MetricType_GAUGE:
				out = append(out, series{name, base, m.GetGauge().GetValue()})
			case dto.MetricType_UNTYPED:
				out = append(out, series{name, base, m.GetUntyped().GetValue()})
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					out = append(out, series{name + "_bucket", with("le", fmt.Sprint(b.GetUpperBound())), float64(b.GetCumulativeCount())})
				}
				out = append(out, series{name + "_bucket", with("le", "+Inf"), float64(h.GetSampleCount())},
					series{name + "_sum", base, h.GetSampleSum()}, series{name + "_count", base, float64(h.GetSampleCount())})
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					out = append(out, series{name, with("quantile", fmt.Sprint(q.GetQuantile())), q.GetValue()})
				}
				out = append(out, series{name + "_sum", base, s.GetSampleSum()}, series{name + "_count", base, float64(s.GetSampleCount())})
			}
		}
	}
	return out
}

// value is the value of the one series named name with exactly labels, or NaN.
func value(ss []series, name string, labels map[string]string) float64 {
	for _, s := range ss {
		if s.name == name && len(s.labels) == len(labels) {
			match := true
			for k, v := range labels {
				match = match && s.labels[k] == v
			}
			if match {
				return s.value
			}
		}
	}
	return math.NaN()
}

// metricsTraffic runs all six services in one process on the fixture and sends
// the traffic an operator's dashboard should show: refreshes that miss and hit
// the cache, a history page, a strategy whose model is missing (a sort
// degradation), a similar-articles call and a bad request; then the app's
// report of the first page's exposure and a click on it, and a line that is no
// action, which nearline applies from the log. It returns the scrape once
// nearline has applied both actions, and the articles served per strategy.
func metricsTraffic(t *testing.T) (ss []series, served map[string]int) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Server.GRPCAddr = "127.0.0.1:0"
	cfg.Server.MetricsAddr = "127.0.0.1:0"
	cfg.Server.HTTPAddr = "127.0.0.1:0"
	cfg.Server.DrainTimeout = time.Second
	cfg.Server.LameDuck = 0 // the stop is not under test
	cfg.Storage.Embedded.Path = filepath.Join(dir, "reco.db")
	cfg.Storage.Log.Embedded.Dir = filepath.Join(dir, "log")
	cfg.Storage.Embedded.NoSync = true
	cfg.Sort.ModelDir = filepath.Join(dir, "models")
	// Deadlines are not under test: a slow -race run must not degrade the feed.
	for _, c := range []*config.Client{&cfg.Clients.RecoCenter, &cfg.Clients.Recall, &cfg.Clients.Sort, &cfg.Clients.Cache} {
		c.Timeout = 10 * time.Second
	}
	cfg.RecoCenter.FillTimeout, cfg.RecoCenter.HistoryTimeout = 10*time.Second, 10*time.Second
	// Algo-2 ranks with model 201, which the fixture does not write.
	plan := strings.Replace(abtest.Original, "Algo-2: {recall: [100, 101, 102, 103, 104], sort: 200", "Algo-2: {recall: [100, 101, 102, 103, 104], sort: 201", 1)
	if plan == abtest.Original {
		t.Fatal("cannot derive the test plan from abtest.Original")
	}
	cfg.Routing.StrategiesFile = filepath.Join(dir, "strategies.yaml")
	if err := os.WriteFile(cfg.Routing.StrategiesFile, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 0; len(users) < 2; i++ {
		u := fmt.Sprintf("dash-%d", i)
		s := "Algo-1"
		if abtest.Bucket("", 16, u) >= 14 {
			s = "Algo-2"
		}
		if users[s] == "" {
			users[s] = u
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = fixture.SeedChannel(ctx, st.Tables, st.Sets, cfg.Sort.ModelDir, deployChannel, users["Algo-1"], users["Algo-2"])
	_ = cleanup()
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(ctx, cfg, zap.NewNop(), []string{app.Routing, app.RecoCenter, app.Recall, app.Sort, app.Cache, app.Nearline})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := userreco.NewUserRecommendClient(conn)

	served = map[string]int{}
	now := time.Now().UnixMilli()
	var first *userreco.Track
	call := func(strategy string, ts int64) {
		tr, err := c.UserRecommend(ctx, &userreco.User{UserId: users[strategy], ChannelId: deployChannel, ArticleNum: 10, TimeStamp: ts})
		if err != nil {
			t.Fatalf("user_recommend for %s: %v", strategy, err)
		}
		if tr.GetExposure() != "" {
			served[strategy] += len(tr.GetRecommends())
		}
		if first == nil {
			first = tr
		}
	}
	for i := range int64(3) {
		call("Algo-1", now+1000*(i+1)) // a miss (recall, sort, store), then two cache hits
	}
	call("Algo-1", now+1000) // a history page: not served again
	call("Algo-2", now+1000) // model 201 is missing: recall order, a sort degradation
	if _, err := c.ArticleRecommend(ctx, &userreco.Article{ArticleId: 3000, ArticleNum: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UserRecommend(ctx, &userreco.User{UserId: "x", ChannelId: 99, ArticleNum: 1, TimeStamp: now}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad channel: %v, want InvalidArgument", err)
	}

	// The loop: the app reports what the reader saw and clicked (the
	// original's log lines around the track strings), routing puts them on
	// the log and nearline applies them.
	envelope := func(param string) string {
		return fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": %s}`, time.Now().UnixMilli(), deployChannel, param)
	}
	lines := []string{envelope(first.GetExposure()), envelope(first.GetRecommends()[0].GetParams().GetClick()), `{"action": "nap"}`}
	rep, err := trackv1.NewTrackServiceClient(conn).Report(ctx, &trackv1.ReportRequest{Lines: lines})
	if err != nil || rep.GetAccepted() != 2 || len(rep.GetRejected()) != 1 {
		t.Fatalf("TrackService/Report = %v, %v; want 2 accepted, 1 rejected", rep, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ss = scrape(t, a.MetricsAddr())
		if value(ss, "reco_nearline_action_age_seconds_count", map[string]string{"part": "counts"}) >= 2 {
			// Once more: a scrape is not a snapshot, and the one that saw the
			// ages may have read the other series before they changed.
			return scrape(t, a.MetricsAddr()), served
		}
		if time.Now().After(deadline) {
			t.Fatal("nearline did not apply the exposure and the click within 30s")
		}
	}
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both are needed for provisioning", d.UID, d.Title)
	}
	panels := queryPanels(d.Panels)
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, p.GridPos)
		}
	}
	var titles []string
	for _, p := range panels {
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.UID != dashboardDatasourceUID || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want the provisioned prometheus (uid %s)", p.Title, p.Datasource, dashboardDatasourceUID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	for _, want := range []string{"p50 latency by service", "p99 latency by service", "Throughput by service", "Cache hit ratio", "Degradations by cause", "Served articles per strategy", "Live CTR per strategy", "Action lines accepted and rejected", "Nearline action age p99"} {
		if !slices.Contains(titles, want) {
			t.Errorf("the dashboard has no %q panel", want)
		}
	}

	ss, served := metricsTraffic(t)
	p := parser.NewParser(parser.Options{})
	for _, pn := range panels {
		for _, target := range pn.Targets {
			where := fmt.Sprintf("panel %q query %s", pn.Title, target.RefID)
			expr, err := p.ParseExpr(grafanaVariables.Replace(target.Expr))
			if err != nil {
				t.Errorf("%s does not parse: %v\n%s", where, err, target.Expr)
				continue
			}
			checkQuery(t, where, expr, ss, nil)
		}
	}

	// The alert and recording rules select what the services export too (a
	// recording rule's series is its own).
	rules := loadRules(t)
	recorded := recordedNames(rules)
	for r, expr := range parsedRules(t, rules) {
		checkQuery(t, "rule "+r.Record+r.Alert, expr, ss, recorded)
	}

	t.Run("sane values after the traffic", func(t *testing.T) {
		um := map[string]string{"grpc_service": "UserRecommend", "grpc_method": "user_recommend", "grpc_type": "unary"}
		withCode := func(code string) map[string]string {
			m := map[string]string{"grpc_code": code}
			for k, v := range um {
				m[k] = v
			}
			return m
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"reco_grpc_server_handled_total", withCode("OK"), 5},
			{"reco_grpc_server_handled_total", withCode("InvalidArgument"), 1},
			{"reco_grpc_server_handling_seconds_count", um, 6},
			{"reco_served_articles_total", map[string]string{"strategy": "Algo-1"}, float64(served["Algo-1"])},
			{"reco_served_articles_total", map[string]string{"strategy": "Algo-2"}, float64(served["Algo-2"])},
			{"reco_feed_degradations_total", map[string]string{"cause": "sort"}, 1},
			// Each user: one miss (recall, sort, then the ranked list is stored
			// and popped), and every later refresh of Algo-1's user a hit.
			{"reco_cache_pops_total", map[string]string{"outcome": "hit"}, 4},
			{"reco_cache_pops_total", map[string]string{"outcome": "empty"}, 2},
			{"reco_history_write_failures_total", map[string]string{}, 0},
			{"reco_grpc_server_panics_recovered_total", map[string]string{}, 0},
			// The loop: the lines routing took and refused, and what nearline
			// applied (an exposure counts the articles of its page).
			{"reco_action_lines_total", map[string]string{"outcome": "accepted"}, 2},
			{"reco_action_lines_total", map[string]string{"outcome": "rejected"}, 1},
			{"reco_actions_total", map[string]string{"action": "exposure", "strategy": "Algo-1"}, 10}, // the first page
			{"reco_actions_total", map[string]string{"action": "click", "strategy": "Algo-1"}, 1},
			{"reco_nearline_bad_lines_total", map[string]string{}, 0},
			{"reco_nearline_action_age_seconds_count", map[string]string{"part": "counts"}, 2},
		} {
			if got := value(ss, c.name, c.labels); got != c.want {
				t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		if served["Algo-1"] != 30 || served["Algo-2"] != 10 {
			t.Errorf("served %v, want 30 to Algo-1 and 10 to Algo-2", served)
		}
		for _, s := range ss {
			if strings.HasPrefix(s.name, "reco_") && (math.IsNaN(s.value) || math.IsInf(s.value, 0) || s.value < 0) {
				t.Errorf("%s%v = %v, want a finite non-negative value", s.name, s.labels, s.value)
			}
			for _, v := range s.labels {
				if strings.HasPrefix(v, "dash-") {
					t.Errorf("%s%v carries a user id: labels must stay bounded", s.name, s.labels)
				}
			}
		}
		// A p99 from the histogram: positive, and inside the buckets.
		var count, within float64
		for _, s := range ss {
			if s.name == "reco_grpc_server_handling_seconds_bucket" && s.labels["grpc_method"] == "user_recommend" {
				switch s.labels["le"] {
				case "+Inf":
					count = s.value
				case "2.5":
					within = s.value
				}
			}
		}
		if count != 6 || within != count {
			t.Errorf("user_recommend latency buckets: %v of %v under 2.5s, want all 6", within, count)
		}
	})
}

// checkQuery fails unless every selector of expr matches a scraped series (its
// target labels aside), and every label the query groups by is on them. A
// selector of a recorded series (a recording rule's) is left out.
func checkQuery(t *testing.T, where string, expr parser.Expr, ss []series, recorded map[string]bool) {
	t.Helper()
	matches := func(vs *parser.VectorSelector) []series {
		var out []series
		for _, s := range ss {
			ok := true
			for _, m := range vs.LabelMatchers {
				v := s.labels[m.Name]
				if m.Name == model.MetricNameLabel {
					v = s.name
				} else if targetLabels[m.Name] {
					continue
				}
				ok = ok && m.Matches(v)
			}
			if ok {
				out = append(out, s)
			}
		}
		return out
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			if recorded[n.Name] {
				return nil
			}
			if len(matches(n)) == 0 {
				t.Errorf("%s: %s selects no series the services export", where, n)
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
				vs, ok := inner.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				for _, s := range matches(vs) {
					for _, l := range n.Grouping {
						if _, has := s.labels[l]; !has && !targetLabels[l] {
							t.Errorf("%s: groups by %q, which %s%v does not carry", where, l, s.name, s.labels)
							return nil
						}
					}
				}
				return nil
			})
		}
		return nil
	})
}
