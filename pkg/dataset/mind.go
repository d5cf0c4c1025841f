// Package dataset reads and writes news-recommendation data in the layout of
// MIND, the public Microsoft News dataset (news.tsv and behaviors.tsv), and
// generates synthetic data in that layout so tests, the demo and benchmarks need
// no download.
//
// Readers are strict: every line is checked, and the first bad one is reported
// as `file:line: what was wrong` (a *LineError wrapping ErrMalformed), so a
// truncated download or a hand-edited file fails before anything is built from
// it.
package dataset

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File names inside a MIND directory.
const (
	NewsFile      = "news.tsv"
	BehaviorsFile = "behaviors.tsv"
)

// TimeLayout is MIND's time format, e.g. `11/15/2019 8:55:22 AM`. MIND does not
// say which zone its times are in; they are read as UTC.
const TimeLayout = "1/2/2006 3:04:05 PM"

// Article is one line of news.tsv.
type Article struct {
	// ID is the numeric part of the MIND id: N34700 is 34700 (see ParseArticleID).
	ID          int64
	Category    string
	Subcategory string
	Title       string
	Abstract    string
	URL         string
	// TitleEntities and AbstractEntities are the JSON entity lists, kept as read
	// (validated as JSON) so a file read and written again is unchanged.
	TitleEntities    string
	AbstractEntities string
}

// Impression is one shown article of a behaviour line and whether it was
// clicked.
type Impression struct {
	Article int64
	Clicked bool
}

// Behavior is one line of behaviors.tsv: one feed impression of one user.
type Behavior struct {
	ID   int64
	User string
	Time time.Time
	// History is the articles the user clicked before the log window, oldest
	// first.
	History []int64
	// Impressions are the shown articles, in the order the log lists them.
	Impressions []Impression
}

// Dataset is a news.tsv and a behaviors.tsv.
type Dataset struct {
	Articles  []Article
	Behaviors []Behavior
}

// ParseArticleID maps a MIND article id to its number: N34700 → 34700. Only the
// form FormatArticleID writes is accepted (N, then digits without a leading
// zero), so the mapping is reversible.
func ParseArticleID(s string) (int64, error) {
	digits, ok := strings.CutPrefix(s, "N")
	if !ok || digits == "" || (digits[0] == '0') {
		return 0, fmt.Errorf("article id %q is not N followed by a number without leading zeros", s)
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("article id %q is not N followed by a number without leading zeros", s)
		}
	}
	id, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("article id %q is out of range", s)
	}
	return id, nil
}

// FormatArticleID is the MIND spelling of an article number: 34700 → N34700.
func FormatArticleID(id int64) string { return "N" + strconv.FormatInt(id, 10) }

// Read reads dir/news.tsv and dir/behaviors.tsv, checking that every article a
// behaviour names is in news.tsv.
func Read(dir string) (*Dataset, error) {
	ds, _, err := ReadWith(dir, ReadOptions{})
	return ds, err
}

// ReadOptions tune ReadWith.
type ReadOptions struct {
	// SkipUnknown drops the references of behaviors.tsv to articles news.tsv
	// lacks — history entries and impressions — and counts them, instead of
	// failing on the first: real MIND files are not perfectly consistent. A
	// line left without an impression is dropped whole. Every other check
	// stays strict.
	SkipUnknown bool
}

// Skipped is what a read with SkipUnknown dropped.
type Skipped struct {
	// Lines is the behaviour lines that named an article news.tsv lacks;
	// DroppedLines is those of them left without an impression, which were
	// dropped whole.
	Lines        int `json:"lines"`
	DroppedLines int `json:"dropped_lines"`
	// History and Impressions are the entries dropped from those lines.
	History     int `json:"history_entries"`
	Impressions int `json:"impressions"`
	// Examples are the first few references dropped (MaxSkippedExamples).
	Examples []UnknownRef `json:"examples,omitempty"`
}

// MaxSkippedExamples bounds Skipped.Examples: a few show what is wrong, a
// million would bury it.
const MaxSkippedExamples = 5

// UnknownRef is one reference of behaviors.tsv to an article news.tsv lacks.
type UnknownRef struct {
	Line    int    `json:"line"`
	Field   string `json:"field"` // "history" or "impressions"
	Article string `json:"article"`
}

// Total is the number of references dropped.
func (s Skipped) Total() int { return s.History + s.Impressions }

// String says what was dropped, for people: counts, then the examples.
func (s Skipped) String() string {
	if s.Total() == 0 {
		return "no reference to an article missing from " + NewsFile
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s to articles missing from %s on %s of %s (%s, %s; %s left without impressions, dropped)",
		plural(s.Total(), "reference", "references"), NewsFile, plural(s.Lines, "line", "lines"), BehaviorsFile,
		plural(s.History, "history entry", "history entries"), plural(s.Impressions, "impression", "impressions"),
		plural(s.DroppedLines, "line", "lines"))
	for i, e := range s.Examples {
		sep := ", "
		if i == 0 {
			sep = "; e.g. "
		}
		fmt.Fprintf(&b, "%sline %d %s %s", sep, e.Line, e.Field, e.Article)
	}
	return b.String()
}

// add counts one dropped reference of line n.
func (s *Skipped) add(n int, field, article string) {
	if field == "history" {
		s.History++
	} else {
		s.Impressions++
	}
	if len(s.Examples) < MaxSkippedExamples {
		s.Examples = append(s.Examples, UnknownRef{Line: n, Field: field, Article: article})
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// ReadWith reads dir/news.tsv and dir/behaviors.tsv as Read does, and with
// o.SkipUnknown drops what names an article news.tsv lacks, saying how much
// it dropped.
func ReadWith(dir string, o ReadOptions) (*Dataset, Skipped, error) {
	articles, err := ReadNews(filepath.Join(dir, NewsFile))
	if err != nil {
		return nil, Skipped{}, err
	}
	known := make(map[int64]struct{}, len(articles))
	for _, a := range articles {
		known[a.ID] = struct{}{}
	}
	var skipped *Skipped
	if o.SkipUnknown {
		skipped = &Skipped{}
	}
	behaviors, err := readBehaviors(filepath.Join(dir, BehaviorsFile), func(id int64) bool {
		_, ok := known[id]
		return ok
	}, skipped)
	if err != nil {
		return nil, Skipped{}, err
	}
	ds := &Dataset{Articles: articles, Behaviors: behaviors}
	if skipped == nil {
		return ds, Skipped{}, nil
	}
	return ds, *skipped, nil
}

// lines calls fn with each line of path (without its line ending) and its
// number, stopping at the first error.
func lines(path string, fn func(n int, line string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only: closing loses nothing
	sc := bufio.NewScanner(f)
	// A MIND line with a long history runs to tens of kilobytes.
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, strings.TrimSuffix(sc.Text(), "\r")); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", path, n+1, err)
	}
	return nil
}

// ReadNews reads a news.tsv: eight tab-separated fields per line.
func ReadNews(path string) ([]Article, error) {
	var out []Article
	seen := map[int64]int{}
	err := lines(path, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			return lineErr(path, n, "want 8 tab-separated fields (news_id, category, subcategory, title, abstract, url, title_entities, abstract_entities), got %d", len(f))
		}
		id, err := ParseArticleID(f[0])
		if err != nil {
			return lineErr(path, n, "news_id: %v", err)
		}
		if first, dup := seen[id]; dup {
			return lineErr(path, n, "news_id %s repeats line %d", f[0], first)
		}
		seen[id] = n
		if strings.TrimSpace(f[1]) == "" {
			return lineErr(path, n, "category of %s is empty", f[0])
		}
		for i, name := range [2]string{"title_entities", "abstract_entities"} {
			if v := f[6+i]; v != "" && !json.Valid([]byte(v)) {
				return lineErr(path, n, "%s of %s is not JSON: %.40q", name, f[0], v)
			}
		}
		out = append(out, Article{
			ID: id, Category: f[1], Subcategory: f[2], Title: f[3], Abstract: f[4], URL: f[5],
			TitleEntities: f[6], AbstractEntities: f[7],
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, lineErr(path, 1, "no articles")
	}
	return out, nil
}

// ReadBehaviors reads a behaviors.tsv: five tab-separated fields per line. known
// (if not nil) says whether an article id is in news.tsv; an unknown one is an
// error wrapping ErrUnknownArticle.
func ReadBehaviors(path string, known func(int64) bool) ([]Behavior, error) {
	return readBehaviors(path, known, nil)
}

// readBehaviors is ReadBehaviors; with skipped not nil, a reference to an
// unknown article is dropped and counted there instead of failing.
func readBehaviors(path string, known func(int64) bool, skipped *Skipped) ([]Behavior, error) {
	var out []Behavior
	seen := map[int64]int{}
	err := lines(path, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return lineErr(path, n, "want 5 tab-separated fields (impression_id, user_id, time, history, impressions), got %d", len(f))
		}
		var b Behavior
		var err error
		var refs, imps int // what skipped counted before this line
		if skipped != nil {
			refs, imps = skipped.Total(), skipped.Impressions
		}
		if b.ID, err = strconv.ParseInt(f[0], 10, 64); err != nil || b.ID <= 0 {
			return lineErr(path, n, "impression_id %q is not a positive integer", f[0])
		}
		if first, dup := seen[b.ID]; dup {
			return lineErr(path, n, "impression_id %d repeats line %d", b.ID, first)
		}
		seen[b.ID] = n
		b.User = f[1]
		if b.User == "" || strings.ContainsAny(b.User, " \t") {
			return lineErr(path, n, "user_id %q is empty or holds a space", b.User)
		}
		if b.Time, err = time.Parse(TimeLayout, f[2]); err != nil {
			return lineErr(path, n, "time %q is not like 11/15/2019 8:55:22 AM", f[2])
		}
		for _, tok := range strings.Fields(f[3]) {
			id, err := ParseArticleID(tok)
			if err != nil {
				return lineErr(path, n, "history: %v", err)
			}
			if known != nil && !known(id) {
				if skipped == nil {
					return unknownErr(path, n, "history names %s, which is not in news.tsv", tok)
				}
				skipped.add(n, "history", tok)
				continue
			}
			b.History = append(b.History, id)
		}
		for _, tok := range strings.Fields(f[4]) {
			name, label, ok := strings.Cut(tok, "-")
			if !ok || (label != "0" && label != "1") {
				return lineErr(path, n, "impression %q is not an article id, a dash and 0 or 1 (e.g. N55689-1)", tok)
			}
			id, err := ParseArticleID(name)
			if err != nil {
				return lineErr(path, n, "impressions: %v", err)
			}
			if known != nil && !known(id) {
				if skipped == nil {
					return unknownErr(path, n, "impressions name %s, which is not in news.tsv", name)
				}
				skipped.add(n, "impressions", name)
				continue
			}
			b.Impressions = append(b.Impressions, Impression{Article: id, Clicked: label == "1"})
		}
		if skipped != nil && skipped.Total() > refs {
			skipped.Lines++
		}
		if len(b.Impressions) == 0 {
			if skipped != nil && skipped.Impressions > imps {
				skipped.DroppedLines++ // every impression named an unknown article
				return nil
			}
			return lineErr(path, n, "impressions are empty")
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, lineErr(path, 1, "no behaviours")
	}
	return out, nil
}

// WriteNews writes articles in news.tsv form.
func WriteNews(w io.Writer, articles []Article) error {
	bw := bufio.NewWriter(w)
	for _, a := range articles {
		for _, s := range [...]string{a.Category, a.Subcategory, a.Title, a.Abstract, a.URL, a.TitleEntities, a.AbstractEntities} {
			if strings.ContainsAny(s, "\t\n\r") {
				return fmt.Errorf("article %s: a field holds a tab or line break: %.40q", FormatArticleID(a.ID), s)
			}
		}
		if _, err := fmt.Fprintf(bw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", FormatArticleID(a.ID), a.Category, a.Subcategory,
			a.Title, a.Abstract, a.URL, a.TitleEntities, a.AbstractEntities); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteBehaviors writes behaviours in behaviors.tsv form.
func WriteBehaviors(w io.Writer, behaviors []Behavior) error {
	bw := bufio.NewWriter(w)
	var buf []byte
	for _, b := range behaviors {
		buf = strconv.AppendInt(buf[:0], b.ID, 10)
		buf = append(buf, '\t')
		buf = append(buf, b.User...)
		buf = append(buf, '\t')
		buf = b.Time.UTC().AppendFormat(buf, TimeLayout)
		buf = append(buf, '\t')
		for i, id := range b.History {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = append(buf, 'N')
			buf = strconv.AppendInt(buf, id, 10)
		}
		buf = append(buf, '\t')
		for i, imp := range b.Impressions {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = append(buf, 'N')
			buf = strconv.AppendInt(buf, imp.Article, 10)
			if imp.Clicked {
				buf = append(buf, "-1"...)
			} else {
				buf = append(buf, "-0"...)
			}
		}
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteDir writes ds as dir/news.tsv and dir/behaviors.tsv, creating dir. Each
// file is written under a temporary name and renamed, so a reader never sees
// half a file.
func WriteDir(dir string, ds *Dataset) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(dir, NewsFile), func(w io.Writer) error { return WriteNews(w, ds.Articles) }); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, BehaviorsFile), func(w io.Writer) error { return WriteBehaviors(w, ds.Behaviors) })
}

func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	// After the rename there is nothing to remove; before it, the write's error
	// is the one to report.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close() // the file is dropped: the error above is the one to report
		return err
	}
	if err := write(tmp); err != nil {
		_ = tmp.Close() // the file is dropped: the error above is the one to report
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
