package offline

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
)

// stopWords are English function words, dropped before TF-IDF: they carry no
// topic and would take keyword slots.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all also am an and any are as at be
		because been before being below between both but by can could did do does doing down during each
		few for from further had has have having he her here hers herself him himself his how i if in into
		is it its itself just me more most my myself new no nor not now of off on once only or other our ours
		ourselves out over own same she should so some such than that the their theirs them themselves then
		there these they this those through to too under until up very was we were what when where which
		while who whom why will with would you your yours yourself yourselves says said get gets one two
		may might must shall us via vs`) {
		m[w] = true
	}
	return m
}()

// tokens appends the lower-cased words of s to dst: runs of letters and digits,
// at least two long, not all digits, not stop words.
func tokens(dst []string, s string) []string {
	for _, f := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(f) < 2 || stopWords[f] || strings.TrimFunc(f, unicode.IsDigit) == "" {
			continue
		}
		dst = append(dst, f)
	}
	return dst
}

// csr is a sparse matrix in compressed-row form: row r's entries are
// cols/vals[ptr[r]:ptr[r+1]], columns ascending.
type csr struct {
	rows, cols int
	ptr        []int
	col        []int32
	val        []float64
}

// tfidf is the TF-IDF matrix of the articles (one L2-normalised row each) and
// its vocabulary.
type tfidf struct {
	m csr
	vocabulary
}

// vocabulary is the terms a build weighs and their inverse document
// frequencies: what turns an article's text into its TF-IDF row, for the
// build's articles and, from the content model, for those published after it.
type vocabulary struct {
	terms []string // sorted
	index map[string]int32
	idf   []float64
}

// titleWeight counts a title word this many times: titles are written to say
// what an article is about, abstracts wander.
const titleWeight = 2

// termCounts is the article's weighted term frequencies over title and
// abstract.
func termCounts(a dataset.Article) map[string]float64 {
	tf := map[string]float64{}
	buf := tokens(nil, a.Title)
	for _, w := range buf {
		tf[w] += titleWeight
	}
	for _, w := range tokens(buf[:0], a.Abstract) {
		tf[w]++
	}
	return tf
}

// row is the TF-IDF row of term frequencies tf: (1 + ln tf) · idf over the
// vocabulary's terms, columns ascending, L2-normalised; empty when no term is
// known. The norm is summed in column order, so the same text gives the same
// bits whichever map order tf iterates in: a published article then gets
// exactly the features the build gave the same text.
func (v *vocabulary) row(tf map[string]float64) ([]int32, []float64) {
	cols := make([]int32, 0, len(tf))
	for w := range tf {
		if j, ok := v.index[w]; ok {
			cols = append(cols, j)
		}
	}
	slices.Sort(cols)
	vals := make([]float64, len(cols))
	var norm float64
	for i, j := range cols {
		vals[i] = (1 + math.Log(tf[v.terms[j]])) * v.idf[j]
		norm += vals[i] * vals[i]
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		return nil, nil
	}
	for i := range vals {
		vals[i] /= norm
	}
	return cols, vals
}

// buildTFIDF weighs each article's words over title and abstract: term
// frequency (1 + ln tf) times smoothed inverse document frequency
// ln((1+N)/(1+df)) + 1, rows L2-normalised. Terms in fewer than two articles (or
// in more than half of them) are dropped: they cannot relate two articles, and
// dropping them keeps the vocabulary, and the SVD, small.
func buildTFIDF(articles []dataset.Article) *tfidf {
	docs := make([]map[string]float64, len(articles))
	df := map[string]int{}
	for i, a := range articles {
		docs[i] = termCounts(a)
		for w := range docs[i] {
			df[w]++
		}
	}
	nDocs := len(articles)
	minDF, maxDF := 2, max(2, nDocs/2)
	if nDocs < 50 {
		minDF = 1
	}
	var terms []string
	for w, d := range df {
		if d >= minDF && d <= maxDF {
			terms = append(terms, w)
		}
	}
	slices.Sort(terms)
	v := vocabulary{terms: terms, index: make(map[string]int32, len(terms)), idf: make([]float64, len(terms))}
	for i, w := range terms {
		v.index[w] = int32(i)
		v.idf[i] = math.Log(float64(1+nDocs)/float64(1+df[w])) + 1
	}
	t := &tfidf{vocabulary: v, m: csr{rows: nDocs, cols: len(terms), ptr: make([]int, 1, nDocs+1)}}
	for _, tf := range docs {
		cols, vals := v.row(tf)
		t.m.col = append(t.m.col, cols...)
		t.m.val = append(t.m.val, vals...)
		t.m.ptr = append(t.m.ptr, len(t.m.col))
	}
	return t
}

// tfidfOf is the one-row TF-IDF matrix of an article's text over the
// vocabulary.
func (v *vocabulary) tfidfOf(a dataset.Article) *tfidf {
	cols, vals := v.row(termCounts(a))
	return &tfidf{vocabulary: *v, m: csr{rows: 1, cols: len(v.terms), ptr: []int{0, len(cols)}, col: cols, val: vals}}
}

// keywords returns the weights of row r's k heaviest terms, heaviest first,
// zero-padded to k, and the terms themselves (ties go to the term that sorts
// first, so the choice is stable).
func (t *tfidf) keywords(r, k int) ([]float64, []string) {
	lo, hi := t.m.ptr[r], t.m.ptr[r+1]
	idx := make([]int, 0, hi-lo)
	for e := lo; e < hi; e++ {
		idx = append(idx, e)
	}
	slices.SortFunc(idx, func(a, b int) int {
		return cmp.Or(cmp.Compare(t.m.val[b], t.m.val[a]), cmp.Compare(t.m.col[a], t.m.col[b]))
	})
	weights := make([]float64, k)
	var words []string
	for i, e := range idx[:min(k, len(idx))] {
		weights[i] = t.m.val[e]
		words = append(words, t.terms[t.m.col[e]])
	}
	return weights, words
}
