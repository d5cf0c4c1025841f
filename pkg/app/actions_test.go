package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	trackv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/track/v1"
)

// reportAnswer is the JSON of POST /v1/actions.
type reportAnswer struct {
	Accepted int `json:"accepted"`
	Rejected []struct {
		Index  int    `json:"index"`
		Reason string `json:"reason"`
	} `json:"rejected"`
}

func TestActionsOverHTTPAndGRPC(t *testing.T) {
	cfg := testConfig(t)
	a, conn, _ := start(t, cfg, order)
	c := httpClient(t)
	click := func(user, article string) string {
		return fmt.Sprintf(`{"action": "click", "userId": %q, "articleId": %q, "algorithmCombine": "Algo-1"}`, user, article)
	}

	t.Run("NDJSON: bad lines are rejected by their line number, the others accepted", func(t *testing.T) {
		body := click("u1", "5") + "\n\n" + strings.Replace(click("u1", "5"), "click", "like", 1) + "\n" + click("u1", "x") + "\n" + envelope(click("u2", "6"), 3) + "\n"
		ans, err := call(t, c, http.MethodPost, a.HTTPAddr(), "/v1/actions", "application/x-ndjson", body)
		if err != nil || ans.code != http.StatusOK {
			t.Fatalf("POST: %d %s, %v", ans.code, ans.body, err)
		}
		var got reportAnswer
		if err := json.Unmarshal(ans.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Accepted != 2 || len(got.Rejected) != 2 || got.Rejected[0].Index != 2 || got.Rejected[1].Index != 3 ||
			!strings.Contains(got.Rejected[0].Reason, `"like" is not one of`) || !strings.Contains(got.Rejected[1].Reason, "articleId") {
			t.Errorf("answer %s: want 2 accepted, lines 2 (unknown action) and 3 (bad articleId) rejected", ans.body)
		}
	})
	t.Run("a JSON array of objects and strings", func(t *testing.T) {
		body := `[` + click("u1", "5") + `, ` + fmt.Sprintf("%q", click("u1", "7")) + `, 42]`
		ans, err := call(t, c, http.MethodPost, a.HTTPAddr(), "/v1/actions", "application/json", body)
		if err != nil || ans.code != http.StatusOK {
			t.Fatalf("POST: %d %s, %v", ans.code, ans.body, err)
		}
		var got reportAnswer
		if err := json.Unmarshal(ans.body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Accepted != 2 || len(got.Rejected) != 1 || got.Rejected[0].Index != 2 {
			t.Errorf("answer %s: want 2 accepted and element 2 rejected", ans.body)
		}
	})
	t.Run("a body that is no batch is a 400", func(t *testing.T) {
		for _, tc := range []struct{ ct, body string }{
			{"application/json", `{"action": "click"}`},
			{"application/xml", `<click/>`},
		} {
			ans, err := call(t, c, http.MethodPost, a.HTTPAddr(), "/v1/actions", tc.ct, tc.body)
			if err != nil || ans.code != http.StatusBadRequest {
				t.Errorf("POST %s %s: %d %s, %v; want 400", tc.ct, tc.body, ans.code, ans.body, err)
			}
		}
	})
	t.Run("gRPC: too many lines is INVALID_ARGUMENT and appends nothing", func(t *testing.T) {
		lines := make([]string, cfg.Track.MaxBatch+1)
		for i := range lines {
			lines[i] = click("u3", "5")
		}
		_, err := trackv1.NewTrackServiceClient(conn).Report(context.Background(), &trackv1.ReportRequest{Lines: lines})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "at most 10000") {
			t.Errorf("Report of %d lines: %v, want INVALID_ARGUMENT naming the bound", len(lines), err)
		}
	})
	t.Run("the A/B readout over HTTP counts what was reported", func(t *testing.T) {
		exposure := `{"action": "exposure", "userId": "u9", "articleId": "[1, 2, 3, 4]", "algorithmCombine": "Algo-1"}`
		if _, err := trackv1.NewTrackServiceClient(conn).Report(context.Background(), &trackv1.ReportRequest{Lines: []string{exposure, click("u9", "2")}}); err != nil {
			t.Fatal(err)
		}
		// Everything reported so far: four clicks, then an exposure and a
		// click.
		waitApplied(t, a, 6, 5)
		ans, err := call(t, c, http.MethodGet, a.HTTPAddr(), "/v1/ab_report?mde=0.1", "", "")
		if err != nil || ans.code != http.StatusOK {
			t.Fatalf("GET /v1/ab_report: %d %s, %v", ans.code, ans.body, err)
		}
		var report struct {
			MDE    float64 `json:"mde"`
			Layers []struct {
				Name     string `json:"name"`
				Variants []struct {
					Name      string `json:"name"`
					Users     int    `json:"users"`
					Exposures int    `json:"exposures"`
					Clicks    int    `json:"clicks"`
				} `json:"variants"`
			} `json:"layers"`
		}
		if err := json.Unmarshal(ans.body, &report); err != nil {
			t.Fatalf("%v in %s", err, ans.body)
		}
		if report.MDE != 0.1 || len(report.Layers) != 1 || len(report.Layers[0].Variants) != 2 {
			t.Fatalf("report %s: want mde 0.1 and the original layer's two variants", ans.body)
		}
		algo1 := report.Layers[0].Variants[0]
		if algo1.Name != "Algo-1" || algo1.Exposures != 4 || algo1.Clicks < 4 {
			t.Errorf("Algo-1 = %+v, want 4 exposures and the clicks reported (readers in Algo-1 by name)", algo1)
		}
		if ans, _ := call(t, c, http.MethodGet, a.HTTPAddr(), "/v1/ab_report?mde=lots", "", ""); ans.code != http.StatusBadRequest {
			t.Errorf("mde=lots: %d %s, want 400", ans.code, ans.body)
		}
	})
}
