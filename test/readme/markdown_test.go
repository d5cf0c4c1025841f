package readme

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unicode"
)

// root is the repository's root directory.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

// docFiles are the documentation files these tests hold to their word,
// relative to root: README.md and every .md under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mdLine is one line of a markdown file outside fenced code blocks.
type mdLine struct {
	n    int // 1-based
	text string
}

// codeBlock is one fenced code block: its info string (sh, yaml, …), the
// line its first content line is on, and its lines.
type codeBlock struct {
	info  string
	line  int
	lines []string
}

var fence = regexp.MustCompile("^\\s*(```+|~~~+)\\s*([^\\s`]*)")

// splitMarkdown separates prose lines from fenced code blocks.
func splitMarkdown(doc string) (prose []mdLine, blocks []codeBlock) {
	var open string // the fence of the block we are in, "" outside
	var cur *codeBlock
	for i, l := range strings.Split(doc, "\n") {
		if m := fence.FindStringSubmatch(l); m != nil {
			switch {
			case open == "":
				open = m[1]
				cur = &codeBlock{info: m[2], line: i + 2}
				continue
			case strings.HasPrefix(m[1], open) && strings.TrimSpace(l) == m[1]:
				open = ""
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
		}
		if open != "" {
			cur.lines = append(cur.lines, l)
			continue
		}
		prose = append(prose, mdLine{n: i + 1, text: l})
	}
	return prose, blocks
}

var (
	heading   = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	inlineMD  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	codeSpans = regexp.MustCompile("`+[^`]*`+")
)

// anchors are the fragment ids GitHub gives the headings of doc: the heading's
// text in lower case, without punctuation, spaces turned into hyphens; a
// repeated one gets -1, -2, ….
func anchors(doc string) map[string]bool {
	prose, _ := splitMarkdown(doc)
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range prose {
		m := heading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		text := inlineMD.ReplaceAllString(m[1], "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slug := b.String()
		if n := seen[slug]; n > 0 {
			out[slug+"-"+itoa(n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

// mdLink is one link of a markdown file.
type mdLink struct {
	line   int
	target string
}

var (
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	refDef     = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$`)
	htmlLink   = regexp.MustCompile(`(?i)<(?:a|img)\s[^>]*(?:href|src)="([^"]*)"`)
)

// links lists the links of doc's prose (not those inside code).
func links(doc string) []mdLink {
	prose, _ := splitMarkdown(doc)
	var out []mdLink
	for _, l := range prose {
		text := codeSpans.ReplaceAllString(l.text, "")
		for _, re := range []*regexp.Regexp{inlineLink, refDef, htmlLink} {
			for _, m := range re.FindAllStringSubmatch(text, -1) {
				out = append(out, mdLink{line: l.n, target: m[1]})
			}
		}
	}
	return out
}

func TestAnchors(t *testing.T) {
	got := anchors("# toutiao-reco\n\n## The loop: readers' actions back into the feed\n" +
		"## HTTP/JSON\n## Loading data: `reco admin`\n```sh\n# not a heading\n```\n## 1. The public API\n## Ports\n### Ports\n")
	for _, want := range []string{"toutiao-reco", "the-loop-readers-actions-back-into-the-feed", "httpjson", "loading-data-reco-admin", "1-the-public-api", "ports", "ports-1"} {
		if !got[want] {
			t.Errorf("anchors = %v, want %q among them", got, want)
		}
	}
	if got["not-a-heading"] {
		t.Errorf("a comment in a code block became an anchor: %v", got)
	}
}

func TestLinksParser(t *testing.T) {
	doc := "See [a](docs/a.md#x), ![img](i.png \"title\") and `[code](not/a/link)`.\n" +
		"```md\n[in code](nope.md)\n```\n[ref]: ../shared/DESIGN.md\n<a href=\"b.md\">b</a>\n"
	var got []string
	for _, l := range links(doc) {
		got = append(got, l.target)
	}
	want := []string{"docs/a.md#x", "i.png", "../shared/DESIGN.md", "b.md"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("links = %q, want %q", got, want)
	}
}
