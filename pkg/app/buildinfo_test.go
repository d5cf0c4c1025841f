package app

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/buildinfo"
)

// TestEveryProcessExportsBuildInfo: whichever service a process runs, its
// /metrics carries reco_build_info = 1 with this build's labels.
func TestEveryProcessExportsBuildInfo(t *testing.T) {
	info := buildinfo.Get()
	want := fmt.Sprintf(`reco_build_info{commit=%q,goversion=%q,version=%q} 1`, info.Commit, info.GoVersion, info.Version)
	for _, target := range order {
		t.Run(target, func(t *testing.T) {
			a, _, _ := start(t, testConfig(t), []string{target})
			got := mustCall(t, httpClient(t), http.MethodGet, a.MetricsAddr(), "/metrics", "", "")
			if got.code != http.StatusOK || !strings.Contains(string(got.body), want+"\n") {
				t.Errorf("/metrics of a %s process (HTTP %d) lacks %s", target, got.code, want)
			}
		})
	}
}
