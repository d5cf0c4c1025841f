package dataset

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// GenerateConfig sizes a synthetic data set.
type GenerateConfig struct {
	// Users is the number of users; each gets at least one impression when
	// there are enough impressions.
	Users int
	// Articles is the number of articles in news.tsv.
	Articles int
	// Days is the length of the impression log.
	Days int
	// Impressions is the number of behaviour lines; 0 means 3 per user (MIND-small
	// has 157k impressions for 50k users).
	Impressions int
	// Seed makes the data set: the same config gives the same files, byte for
	// byte.
	Seed uint64
	// Start is the first day of the log; zero means 2019-11-09 UTC, MIND-small's.
	Start time.Time
}

// DefaultStart is MIND-small's first day.
var DefaultStart = time.Date(2019, 11, 9, 0, 0, 0, 0, time.UTC)

// Validate reports the first unusable field.
func (c GenerateConfig) Validate() error {
	switch {
	case c.Users < 1:
		return fmt.Errorf("users must be at least 1, got %d", c.Users)
	case c.Articles < 20:
		return fmt.Errorf("articles must be at least 20, got %d", c.Articles)
	case c.Days < 2:
		return fmt.Errorf("days must be at least 2 (the last day is the hold-out), got %d", c.Days)
	case c.Impressions < 0:
		return fmt.Errorf("impressions must be positive, or 0 for 3 per user, got %d", c.Impressions)
	}
	return nil
}

// The generator's distributions. Each is a documented, plain choice that gives
// MIND's broad shape; none is fitted to MIND.
const (
	// archiveShare of the articles are published in the 30 days before the log
	// and appear only in histories (MIND's histories reach back before its
	// window); the rest are published uniformly over the log's days.
	archiveShare = 0.3
	archiveDays  = 30
	// An article is shown for liveHours after publication.
	liveHours = 48
	// zipfExponent shapes article popularity: the article of popularity rank r
	// is drawn for exposure with weight 1/r^zipfExponent.
	zipfExponent = 1.0
	// personalShare of the shown slots come from the user's favourite
	// categories (the old system's personalisation); the rest by popularity.
	personalShare = 0.4
	// Impression list lengths are log-normal: median 24, σ 0.9 (mean ≈ 36, as
	// MIND's ≈ 37), clamped to 2..300.
	listMedian, listSigma = 24, 0.9
	// History lengths are log-normal, median 16, σ 0.9; emptyHistory of the users
	// have none (cold start).
	historyMedian, historySigma = 16, 0.9
	emptyHistory                = 0.05
	// Clicks are position-biased: slot p (0-based) is examined with probability
	// 1/(1+p)^positionDecay, and an examined article is clicked with probability
	// σ(clickBias + prefWeight·pref + subWeight·[favourite subcategory] +
	// appealWeight·appeal + noise), where pref is the user's share of interest
	// in the article's category and appeal a per-article quality (correlated with
	// popularity, and visible in the title's hook words).
	positionDecay = 0.5
	clickBias     = -5.3
	prefWeight    = 4.0
	subWeight     = 1.0
	appealWeight  = 0.8
	clickNoise    = 0.5
	// appealFromPopularity is the correlation of appeal with log popularity.
	appealFromPopularity = 0.5
)

// categoryShare is the share of articles in each category, roughly MIND-small's.
var categoryShare = map[string]float64{
	"news": 0.305, "sports": 0.283, "finance": 0.058, "lifestyle": 0.046, "travel": 0.045,
	"foodanddrink": 0.044, "video": 0.043, "weather": 0.041, "health": 0.030, "autos": 0.030,
	"tv": 0.017, "music": 0.015, "movies": 0.015, "entertainment": 0.012, "kids": 0.002,
	"middleeast": 0.001, "northamerica": 0.001, "games": 0.001,
}

var subSuffixes = [...]string{"top", "local", "world", "trends", "reviews", "opinion", "people", "science", "money", "life"}

// hookWords are the clickbait words of a title: the more appealing the article,
// the more of them, so titles carry some of what makes an article clicked.
var hookWords = [...]string{
	"shocking", "secret", "revealed", "amazing", "incredible", "surprising", "unbelievable",
	"viral", "stunning", "heartwarming", "hilarious", "epic", "exclusive", "breaking",
}

var syllables = [...]string{"ba", "ko", "ri", "tu", "ne", "mi", "sa", "lo", "de", "vu", "pa", "zi", "go", "he", "ju", "fa", "wo", "ce", "ly", "xa"}

// word is the k-th pseudo-word: base-20 syllables, at least three, so distinct
// k give distinct words and none is an English stop word.
func word(k int) string {
	var b strings.Builder
	for i := 0; i < 3 || k > 0; i++ {
		b.WriteString(syllables[k%len(syllables)])
		k /= len(syllables)
	}
	return b.String()
}

// vocab is a word list drawn Zipf-like: word r with weight 1/(r+1)^0.9.
type vocab struct {
	words []string
	cum   []float64
}

func newVocab(first, n int) vocab {
	v := vocab{words: make([]string, n), cum: make([]float64, n)}
	sum := 0.0
	for r := range n {
		v.words[r] = word(first + r)
		sum += 1 / math.Pow(float64(r+1), 0.9)
		v.cum[r] = sum
	}
	return v
}

func (v vocab) draw(rng *rand.Rand) string {
	return v.words[pick(v.cum, 0, len(v.cum), rng)]
}

// pick draws an index in [lo, hi) with probability proportional to the weights
// whose running sums are cum.
func pick(cum []float64, lo, hi int, rng *rand.Rand) int {
	base := 0.0
	if lo > 0 {
		base = cum[lo-1]
	}
	u := base + rng.Float64()*(cum[hi-1]-base)
	i, _ := slices.BinarySearch(cum[lo:hi], u)
	return lo + min(i, hi-lo-1)
}

type genArticle struct {
	cat, sub  int
	published time.Time
	weight    float64 // popularity weight for exposure
	appeal    float64
}

type genUser struct {
	pref     []float64 // share of interest per category
	favSub   map[[2]int]bool
	activity float64
	history  []int
}

// pool is a set of articles sorted by publish time with running popularity
// sums, so "articles live at t, by popularity" is two binary searches.
type pool struct {
	idx   []int // article indices, by publish time
	times []int64
	cum   []float64
}

func newPool(arts []genArticle, idx []int) pool {
	slices.SortStableFunc(idx, func(a, b int) int { return arts[a].published.Compare(arts[b].published) })
	p := pool{idx: idx, times: make([]int64, len(idx)), cum: make([]float64, len(idx))}
	sum := 0.0
	for i, a := range idx {
		p.times[i] = arts[a].published.UnixMilli()
		sum += arts[a].weight
		p.cum[i] = sum
	}
	return p
}

// live returns the index range of articles published in [from, to].
func (p pool) live(from, to int64) (int, int) {
	lo, _ := slices.BinarySearch(p.times, from)
	hi, _ := slices.BinarySearch(p.times, to+1)
	return lo, hi
}

func (p pool) draw(lo, hi int, rng *rand.Rand) (int, bool) {
	if hi <= lo {
		return 0, false
	}
	return p.idx[pick(p.cum, lo, hi, rng)], true
}

func normal(rng *rand.Rand, mu, sigma float64) float64 { return mu + sigma*rng.NormFloat64() }

func logNormalCount(rng *rand.Rand, median, sigma float64, lo, hi int) int {
	n := int(math.Round(math.Exp(normal(rng, math.Log(median), sigma))))
	return max(lo, min(hi, n))
}

func poisson(rng *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Generate makes a synthetic data set in MIND's layout from the distributions
// documented on the constants above: categories with MIND-like shares, each with
// subcategories and its own vocabulary; Zipf article popularity; articles
// published over the days and shown for two days; users with one to three
// favourite categories and favourite subcategories in them; position-biased
// clicks that depend on the user's interest, the subcategory and the article's
// appeal. Every impression has at least one click, as in MIND.
func Generate(cfg GenerateConfig) (*Dataset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid generate config: %w", err)
	}
	if cfg.Impressions == 0 {
		cfg.Impressions = 3 * cfg.Users
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))

	cats := categories[:]
	catCum := make([]float64, len(cats))
	nsub := make([]int, len(cats))
	sum := 0.0
	for i, c := range cats {
		sum += categoryShare[c]
		catCum[i] = sum
		nsub[i] = min(len(subSuffixes), 3+int(categoryShare[c]*20))
	}
	catShare := func(c int) float64 { return categoryShare[cats[c]] / sum }

	// Vocabularies: one common, one per category, one per subcategory.
	next := 0
	take := func(n int) vocab { v := newVocab(next, n); next += n; return v }
	common := take(600)
	catVocab := make([]vocab, len(cats))
	subVocab := make([][]vocab, len(cats))
	for c := range cats {
		catVocab[c] = take(200)
		for range nsub[c] {
			subVocab[c] = append(subVocab[c], take(80))
		}
	}

	// Articles: category, subcategory, publish time, popularity, appeal, text.
	start := cfg.Start
	window := time.Duration(cfg.Days) * 24 * time.Hour
	ranks := rng.Perm(cfg.Articles)
	arts := make([]genArticle, cfg.Articles)
	logW := make([]float64, cfg.Articles)
	for i := range arts {
		a := &arts[i]
		a.cat = pick(catCum, 0, len(catCum), rng)
		a.sub = rng.IntN(nsub[a.cat])
		if rng.Float64() < archiveShare {
			a.published = start.Add(-time.Duration(rng.Int64N(int64(archiveDays * 24 * time.Hour))))
		} else {
			a.published = start.Add(time.Duration(rng.Int64N(int64(window))))
		}
		a.published = a.published.Truncate(time.Second)
		a.weight = 1 / math.Pow(float64(ranks[i]+1), zipfExponent)
		logW[i] = math.Log(a.weight)
	}
	mean, sd := meanStd(logW)
	for i := range arts {
		z := (logW[i] - mean) / sd
		arts[i].appeal = appealFromPopularity*z + math.Sqrt(1-appealFromPopularity*appealFromPopularity)*rng.NormFloat64()
	}
	out := &Dataset{Articles: make([]Article, len(arts))}
	for i, a := range arts {
		id := int64(10001 + i)
		out.Articles[i] = Article{
			ID:               id,
			Category:         cats[a.cat],
			Subcategory:      cats[a.cat] + subSuffixes[a.sub],
			Title:            text(rng, 6+rng.IntN(7), 0.35*math.Exp(0.9*a.appeal), common, catVocab[a.cat], subVocab[a.cat][a.sub], false),
			Abstract:         text(rng, 15+rng.IntN(21), 0.15*math.Exp(0.9*a.appeal), common, catVocab[a.cat], subVocab[a.cat][a.sub], true),
			URL:              "https://news.example/" + FormatArticleID(id),
			TitleEntities:    "[]",
			AbstractEntities: "[]",
		}
	}

	// Pools: every shown article by publish time, overall and per category; the
	// archive per category and per subcategory for histories.
	var shownIdx []int
	catShown := make([][]int, len(cats))
	catArchive := make([][]int, len(cats))
	subArchive := map[[2]int][]int{}
	for i, a := range arts {
		if a.published.Before(start) {
			catArchive[a.cat] = append(catArchive[a.cat], i)
			k := [2]int{a.cat, a.sub}
			subArchive[k] = append(subArchive[k], i)
			continue
		}
		shownIdx = append(shownIdx, i)
		catShown[a.cat] = append(catShown[a.cat], i)
	}
	if len(shownIdx) == 0 {
		return nil, errors.New("generate: no article published in the log window; raise articles")
	}
	shown := newPool(arts, shownIdx)
	catPools := make([]pool, len(cats))
	catArchivePools := make([]pool, len(cats))
	subArchivePools := map[[2]int]pool{}
	for c := range cats {
		catPools[c] = newPool(arts, catShown[c])
		catArchivePools[c] = newPool(arts, catArchive[c])
	}
	for k, idx := range subArchive {
		subArchivePools[k] = newPool(arts, idx)
	}

	// Users: favourite categories and subcategories, activity, history.
	users := make([]genUser, cfg.Users)
	activityCum := make([]float64, cfg.Users)
	asum := 0.0
	for u := range users {
		users[u] = newUser(rng, len(cats), nsub, catCum, catShare)
		usr := &users[u]
		asum += usr.activity
		activityCum[u] = asum
		usr.history = history(rng, usr, arts, catArchivePools, subArchivePools)
	}
	prefCum := make([][]float64, len(users))
	for u := range users {
		prefCum[u] = make([]float64, len(cats))
		s := 0.0
		for c, p := range users[u].pref {
			s += p
			prefCum[u][c] = s
		}
	}

	// Impressions.
	type imp struct {
		user int
		at   time.Time
		list []Impression
	}
	imps := make([]imp, 0, cfg.Impressions)
	firstOrder := rng.Perm(cfg.Users)[:min(cfg.Users, cfg.Impressions)]
	seen := map[int]bool{}
	for attempts := 0; len(imps) < cfg.Impressions; attempts++ {
		if attempts > 20*cfg.Impressions+1000 {
			return nil, fmt.Errorf("generate: only %d of %d impressions got a click; raise articles or days", len(imps), cfg.Impressions)
		}
		// Every user gets an impression first (MIND lists only users who have
		// one), then the rest go by activity.
		var u int
		if len(imps) < len(firstOrder) {
			u = firstOrder[len(imps)]
		} else {
			u = pick(activityCum, 0, len(activityCum), rng)
		}
		usr := &users[u]
		day := rng.IntN(cfg.Days)
		at := start.Add(time.Duration(day)*24*time.Hour + 6*time.Hour + time.Duration(rng.Int64N(int64(17*time.Hour)))).Truncate(time.Second)
		from, to := at.Add(-liveHours*time.Hour).UnixMilli(), at.UnixMilli()
		lo, hi := shown.live(from, to)
		if hi-lo < 2 {
			continue
		}
		n := min(logNormalCount(rng, listMedian, listSigma, 2, 300), hi-lo)
		clear(seen)
		var list []Impression
		clicked := false
		for tries := 0; len(list) < n && tries < 4*n; tries++ {
			var a int
			ok := false
			if rng.Float64() < personalShare {
				c := pick(prefCum[u], 0, len(cats), rng)
				clo, chi := catPools[c].live(from, to)
				a, ok = catPools[c].draw(clo, chi, rng)
			}
			if !ok {
				a, _ = shown.draw(lo, hi, rng)
			}
			if seen[a] {
				continue
			}
			seen[a] = true
			art := &arts[a]
			z := clickBias + prefWeight*usr.pref[art.cat] + appealWeight*art.appeal + normal(rng, 0, clickNoise)
			if usr.favSub[[2]int{art.cat, art.sub}] {
				z += subWeight
			}
			exam := 1 / math.Pow(float64(1+len(list)), positionDecay)
			click := rng.Float64() < exam*sigmoid(z)
			clicked = clicked || click
			list = append(list, Impression{Article: out.Articles[a].ID, Clicked: click})
		}
		if !clicked {
			continue
		}
		imps = append(imps, imp{u, at, list})
	}
	slices.SortStableFunc(imps, func(a, b imp) int { return a.at.Compare(b.at) })
	out.Behaviors = make([]Behavior, len(imps))
	for i, im := range imps {
		var hist []int64 // nil when empty, as Read gives it
		for _, a := range users[im.user].history {
			hist = append(hist, out.Articles[a].ID)
		}
		out.Behaviors[i] = Behavior{
			ID: int64(i + 1), User: fmt.Sprintf("U%d", im.user+1), Time: im.at,
			History: hist, Impressions: im.list,
		}
	}
	return out, nil
}

func newUser(rng *rand.Rand, ncat int, nsub []int, catCum []float64, catShare func(int) float64) genUser {
	u := genUser{pref: make([]float64, ncat), favSub: map[[2]int]bool{}, activity: math.Exp(rng.NormFloat64())}
	var k int
	switch r := rng.Float64(); {
	case r < 0.35:
		k = 1
	case r < 0.8:
		k = 2
	default:
		k = 3
	}
	var favs []int
	for len(favs) < k {
		c := pick(catCum, 0, ncat, rng)
		if !slices.Contains(favs, c) {
			favs = append(favs, c)
		}
	}
	// Dirichlet(1) shares of 85% over the favourites; 15% spread by category size.
	shares := make([]float64, k)
	total := 0.0
	for i := range shares {
		shares[i] = rng.ExpFloat64()
		total += shares[i]
	}
	for c := range u.pref {
		u.pref[c] = 0.15 * catShare(c)
	}
	for i, c := range favs {
		u.pref[c] += 0.85 * shares[i] / total
		for range 1 + rng.IntN(2) {
			u.favSub[[2]int{c, rng.IntN(nsub[c])}] = true
		}
	}
	return u
}

// history draws a user's pre-window clicks from the archive: category by the
// user's interest, a favourite subcategory 70% of the time, article by
// popularity; oldest first.
func history(rng *rand.Rand, u *genUser, arts []genArticle, catPools []pool, subPools map[[2]int]pool) []int {
	if rng.Float64() < emptyHistory {
		return nil
	}
	n := logNormalCount(rng, historyMedian, historySigma, 1, 300)
	var favs [][2]int
	for k := range u.favSub {
		favs = append(favs, k)
	}
	slices.SortFunc(favs, func(a, b [2]int) int { return cmpPair(a, b) })
	cum := make([]float64, len(u.pref))
	s := 0.0
	for c, p := range u.pref {
		s += p
		cum[c] = s
	}
	var out []int
	seen := map[int]bool{}
	for tries := 0; len(out) < n && tries < 4*n; tries++ {
		var a int
		ok := false
		if rng.Float64() < 0.7 && len(favs) > 0 {
			p := subPools[favs[rng.IntN(len(favs))]]
			a, ok = p.draw(0, len(p.idx), rng)
		}
		if !ok {
			p := catPools[pick(cum, 0, len(cum), rng)]
			a, ok = p.draw(0, len(p.idx), rng)
		}
		if !ok || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b int) int { return arts[a].published.Compare(arts[b].published) })
	return out
}

func cmpPair(a, b [2]int) int {
	if a[0] != b[0] {
		return a[0] - b[0]
	}
	return a[1] - b[1]
}

// text is n words from the common, category and subcategory vocabularies
// (35/30/35%) with Poisson(hooks) hook words mixed in.
func text(rng *rand.Rand, n int, hooks float64, common, cat, sub vocab, sentence bool) string {
	words := make([]string, 0, n+4)
	for range n {
		switch r := rng.Float64(); {
		case r < 0.35:
			words = append(words, sub.draw(rng))
		case r < 0.65:
			words = append(words, cat.draw(rng))
		default:
			words = append(words, common.draw(rng))
		}
	}
	for range poisson(rng, hooks) {
		at := rng.IntN(len(words) + 1)
		words = slices.Insert(words, at, hookWords[rng.IntN(len(hookWords))])
	}
	s := strings.Join(words, " ")
	s = strings.ToUpper(s[:1]) + s[1:]
	if sentence {
		s += "."
	}
	return s
}

func meanStd(v []float64) (float64, float64) {
	var m float64
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	sd := math.Sqrt(ss / float64(len(v)))
	if sd == 0 {
		sd = 1
	}
	return m, sd
}
