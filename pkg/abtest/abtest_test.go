package abtest

import (
	"fmt"
	"strings"
	"testing"
)

// The expected first hex digits come from Python's
// hashlib.md5(user_id.encode()).hexdigest()[:1], the original's bucketing.
func TestOriginalBucketingMatchesThePythonOriginal(t *testing.T) {
	plan, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user     string
		firstHex string
		want     string
	}{
		{"1", "c", "Algo-1"},
		{"2", "c", "Algo-1"},
		{"3", "e", "Algo-2"},
		{"4", "a", "Algo-1"},
		{"5", "e", "Algo-2"},
		{"anony", "9", "Algo-1"},
		{"u1", "e", "Algo-2"},
		{"U13740", "0", "Algo-1"},
		{"U87243", "5", "Algo-1"},
		{"1115629498121", "d", "Algo-1"},
		{"1114864874141", "b", "Algo-1"},
		{"user-é", "e", "Algo-2"},
		{" ", "7", "Algo-1"},
	}
	for _, tt := range tests {
		if got := fmt.Sprintf("%x", Bucket("", 16, tt.user)); got != tt.firstHex {
			t.Errorf("Bucket(%q) = %s, want md5's first hex digit %s", tt.user, got, tt.firstHex)
		}
		got := plan.Assign(tt.user)
		if got.Name != tt.want {
			t.Errorf("Assign(%q) = %s, want %s", tt.user, got.Name, tt.want)
		}
		if got.Sort != 200 || len(got.Recall) != 5 {
			t.Errorf("Assign(%q) strategy = %+v, want recall 100–104 and sort 200", tt.user, got)
		}
	}
}

func TestLayersAreOrthogonalAndExperimentsExclusive(t *testing.T) {
	plan, err := Parse([]byte(`
default: base
strategies:
  base: {recall: [100, 103, 104], sort: 200}
  content: {recall: [101, 103, 104], sort: 200}
layers:
  - name: recall
    salt: recall-2026-11
    buckets: 100
    experiments:
      - {name: content, buckets: "0-49", strategy: content}
  - name: ranker
    salt: ranker-2026-11
    buckets: 100
    experiments:
      - {name: fm, buckets: "0-49", sort: 201}
`))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for i := range 20000 {
		a := plan.Assign(fmt.Sprintf("user-%d", i))
		counts[a.Name]++
		if strings.Contains(a.Name, "fm") != (a.Sort == 201) {
			t.Fatalf("assignment %+v: name and sort model disagree", a)
		}
		if strings.Contains(a.Name, "content") != (a.Recall[0] == 101) {
			t.Fatalf("assignment %+v: name and recall disagree", a)
		}
	}
	// Orthogonal layers split each other's arms evenly: all four combinations get
	// about a quarter of the users.
	for _, name := range []string{"base", "content", "fm", "content|fm"} {
		if n := counts[name]; n < 4500 || n > 5500 {
			t.Errorf("%s got %d of 20000 users, want about 5000 (counts %v)", name, n, counts)
		}
	}
	// Sticky: the same id always gets the same assignment.
	if a, b := plan.Assign("user-7"), plan.Assign("user-7"); a.Name != b.Name {
		t.Errorf("assignment of user-7 changed: %s then %s", a.Name, b.Name)
	}
}

func TestParseRefusesBadPlans(t *testing.T) {
	const strategies = "default: a\nstrategies:\n  a: {recall: [100], sort: 200}\n"
	tests := map[string]string{
		"overlap":          strategies + "layers:\n  - {name: l, buckets: 16, experiments: [{strategy: a, buckets: \"0-8\"}, {name: b, sort: 201, buckets: \"8-15\"}]}\n",
		"range too wide":   strategies + "layers:\n  - {name: l, buckets: 16, experiments: [{strategy: a, buckets: \"0-16\"}]}\n",
		"unknown strategy": strategies + "layers:\n  - {name: l, buckets: 16, experiments: [{strategy: zz, buckets: \"0\"}]}\n",
		"bad source":       "default: a\nstrategies:\n  a: {recall: [105], sort: 200}\n",
		"no default":       "default: b\nstrategies:\n  a: {recall: [100], sort: 200}\n",
		"ratios over one":  "default: a\nstrategies:\n  a: {recall: [100], sort: 200, new_ratio: 0.6, hot_ratio: 0.6}\n",
		"unknown key":      strategies + "extra: 1\n",
		"bad override":     strategies + "layers:\n  - {name: l, buckets: 16, experiments: [{name: x, new_ratio: 2, buckets: \"0\"}]}\n",
	}
	for name, in := range tests {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("%s: Parse succeeded, want an error", name)
		}
	}
}
