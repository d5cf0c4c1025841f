package dataset

import (
	"bytes"
	"reflect"
	"testing"
)

func TestGenerateIsDeterministic(t *testing.T) {
	cfg := GenerateConfig{Users: 200, Articles: 300, Days: 4, Seed: 11}
	a, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two generations with one seed differ")
	}
	cfg.Seed++
	c, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var x, y bytes.Buffer
	_ = WriteBehaviors(&x, a.Behaviors)
	_ = WriteBehaviors(&y, c.Behaviors)
	if bytes.Equal(x.Bytes(), y.Bytes()) {
		t.Error("another seed gave the same behaviours")
	}
}

// TestGenerateHasMINDsShape checks the documented properties of the generated
// data: every user appears, histories repeat per user, every impression has a
// click, the click rate is MIND-like, articles are shown after publication and
// popularity is skewed.
func TestGenerateHasMINDsShape(t *testing.T) {
	cfg := GenerateConfig{Users: 1000, Articles: 1500, Days: 5, Seed: 2}
	ds, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Behaviors) != 3*cfg.Users {
		t.Errorf("%d behaviours, want %d (3 per user)", len(ds.Behaviors), 3*cfg.Users)
	}
	cats := map[string]bool{}
	for _, a := range ds.Articles {
		if Channel(a.Category) == ChannelOther {
			t.Fatalf("article %d has category %q outside the channel table", a.ID, a.Category)
		}
		cats[a.Category] = true
	}
	if len(cats) < 12 {
		t.Errorf("only %d categories", len(cats))
	}
	history := map[string][]int64{}
	shownCount := map[int64]int{}
	var shown, clicks int
	for i, b := range ds.Behaviors {
		if i > 0 && b.Time.Before(ds.Behaviors[i-1].Time) {
			t.Fatal("behaviours are not in time order")
		}
		if h, ok := history[b.User]; ok && !reflect.DeepEqual(h, b.History) {
			t.Fatalf("user %s has two histories", b.User)
		}
		history[b.User] = b.History
		clicked := false
		for _, im := range b.Impressions {
			shown++
			shownCount[im.Article]++
			if im.Clicked {
				clicks++
				clicked = true
			}
		}
		if !clicked {
			t.Fatalf("impression %d has no click", b.ID)
		}
		day := b.Time.Sub(DefaultStart).Hours() / 24
		if day < 0 || day >= float64(cfg.Days) {
			t.Fatalf("impression %d at %v is outside the %d days", b.ID, b.Time, cfg.Days)
		}
	}
	if len(history) != cfg.Users {
		t.Errorf("%d users appear, want %d", len(history), cfg.Users)
	}
	ctr := float64(clicks) / float64(shown)
	if ctr < 0.02 || ctr > 0.09 {
		t.Errorf("click rate %.3f, want MIND-like (about 0.04)", ctr)
	}
	if per := float64(shown) / float64(len(ds.Behaviors)); per < 15 || per > 60 {
		t.Errorf("%.1f articles per impression, want about 36", per)
	}
	// Zipf: the most shown 10% of shown articles take a large share of showings.
	var counts []int
	for _, c := range shownCount {
		counts = append(counts, c)
	}
	top, total := topShare(counts, len(counts)/10)
	if float64(top)/float64(total) < 0.3 {
		t.Errorf("the top 10%% of articles get %.2f of showings, want a skewed (Zipf) share", float64(top)/float64(total))
	}
}

func topShare(counts []int, k int) (int, int) {
	total := 0
	for _, c := range counts {
		total += c
	}
	// selection by repeated max is fine at test sizes
	used := make([]bool, len(counts))
	top := 0
	for range k {
		best := -1
		for i, c := range counts {
			if !used[i] && (best < 0 || c > counts[best]) {
				best = i
			}
		}
		used[best] = true
		top += counts[best]
	}
	return top, total
}

func TestGenerateValidates(t *testing.T) {
	for _, cfg := range []GenerateConfig{
		{Users: 0, Articles: 100, Days: 3},
		{Users: 10, Articles: 5, Days: 3},
		{Users: 10, Articles: 100, Days: 1},
		{Users: 10, Articles: 100, Days: 3, Impressions: -1},
	} {
		if _, err := Generate(cfg); err == nil {
			t.Errorf("Generate(%+v) succeeded", cfg)
		}
	}
}
