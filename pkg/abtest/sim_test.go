package abtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/sync/errgroup"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// simPlan splits readers 50/50 between two rankers.
const simPlan = `
default: base
strategies:
  base: {recall: [100, 103, 104], sort: 200}
layers:
  - name: ranker
    salt: sim
    buckets: 100
    experiments:
      - {name: control, buckets: "0-49"}
      - {name: treatment, buckets: "50-99", sort: 201}
`

// simulate draws one experiment's counters: each reader sees a geometric
// number of articles (mean 10, some none) and clicks each with a CTR of their
// own, drawn from a Beta around their variant's true rate. That per-reader
// heterogeneity is what makes exposures within a reader correlated, and a
// binomial interval too narrow.
func simulate(seed uint64, users, names []string, trueCTR map[string]float64) map[string]map[string]storage.UserCounts {
	const concentration = 20 // Beta(κp, κ(1−p)): per-reader CTRs spread about ±5 points
	rng := rand.New(rand.NewPCG(seed, 0))
	beta := map[string]distuv.Beta{}
	for name, p := range trueCTR {
		beta[name] = distuv.Beta{Alpha: concentration * p, Beta: concentration * (1 - p), Src: rng}
	}
	counters := map[string]map[string]storage.UserCounts{}
	for name := range trueCTR {
		counters[name] = make(map[string]storage.UserCounts, len(users))
	}
	for i, name := range names {
		exposures := int64(math.Log(1-rng.Float64()) / math.Log(10.0/11)) // geometric on 0, 1, …: mean (1−q)/q = 10 with q = 1/11
		ctr := beta[name].Rand()
		var clicks int64
		for range exposures {
			if rng.Float64() < ctr {
				clicks++
			}
		}
		counters[name][users[i]] = storage.UserCounts{Exposures: exposures, Clicks: clicks}
	}
	return counters
}

func TestReportIntervalsCoverTheTruth(t *testing.T) {
	const readers, seeds = 100_000, 20
	trueCTR := map[string]float64{"control": 0.050, "treatment": 0.055}
	trueLift := trueCTR["treatment"]/trueCTR["control"] - 1
	plan, err := Parse([]byte(simPlan))
	if err != nil {
		t.Fatal(err)
	}
	users, names := make([]string, readers), make([]string, readers)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		names[i] = plan.Assign(users[i]).Name
	}
	// Seeds run in parallel (the plan is read-only, so Report may be called
	// concurrently, as the HTTP readout does), GOMAXPROCS at a time to bound
	// the counters held at once.
	layers := make([]LayerReport, seeds)
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for seed := range uint64(seeds) {
		g.Go(func() error {
			r, err := plan.Report(simulate(seed, users, names, trueCTR), ReportOptions{})
			if err != nil {
				return err
			}
			layers[seed] = r.Layers[0]
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	ctrCovered := map[string]int{}
	liftCovered, significant := 0, 0
	var widthRatio float64
	for seed, l := range layers {
		if l.SRM.Mismatch {
			t.Errorf("seed %d: hashing 50/50 flagged as a sample-ratio mismatch: %+v", seed, l.SRM)
		}
		for _, v := range l.Variants {
			if covers(v.CTR, trueCTR[v.Name]) {
				ctrCovered[v.Name]++
			}
			// The binomial interval's half-width, to show what the
			// per-reader one corrects.
			ctr := float64(v.CTR.Value)
			binomial := 1.96 * math.Sqrt(ctr*(1-ctr)/float64(v.Exposures))
			widthRatio += float64(v.CTR.High-v.CTR.Value) / binomial / (2 * seeds)
		}
		treatment := l.Variants[1]
		if covers(*treatment.Lift, trueLift) {
			liftCovered++
		}
		if treatment.PValue < Alpha {
			significant++
		}
	}
	t.Logf("CTR CI covered the true CTR in %d/%d seeds (control) and %d/%d (treatment)", ctrCovered["control"], seeds, ctrCovered["treatment"], seeds)
	t.Logf("lift CI covered the true lift (%+.0f%%) in %d/%d seeds", 100*trueLift, liftCovered, seeds)
	t.Logf("the lift was significant at α %g in %d/%d seeds; per-reader CTR intervals are %.2f× as wide as binomial ones", Alpha, significant, seeds, widthRatio)
	for name := range trueCTR {
		if n := ctrCovered[name]; n < 17 {
			t.Errorf("%s: CTR CI covered the truth in %d/%d seeds, want ≥ 17", name, n, seeds)
		}
	}
	if liftCovered < 17 {
		t.Errorf("lift CI covered the true lift in %d/%d seeds, want ≥ 17", liftCovered, seeds)
	}
	if widthRatio < 1.2 {
		t.Errorf("per-reader intervals are %.2f× the binomial ones; with heterogeneous readers they should be wider", widthRatio)
	}
}

func covers(e Estimate, truth float64) bool {
	return float64(e.Low) <= truth && truth <= float64(e.High)
}
