package readme

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outside matches mentions of material that is not in this repository: the
// design notes and seed texts the project was written from. The documentation
// states what it needs in its own words (docs/contract.md) instead.
var outside = regexp.MustCompile(`\.\./shared|(^|[\s(\x60"'])/?shared/|\bDESIGN\.md\b|\bSTYLE\.md\b|\bseeds/`)

// TestDocsStandAlone: README.md and docs/*.md link only to files of this
// repository that exist (and to headings that exist in them), or to web
// addresses; no link or mention leads outside the repository's tree; and the
// README links to the contract.
func TestDocsStandAlone(t *testing.T) {
	var problems []string
	report := func(file string, line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	docAnchors := map[string]map[string]bool{}
	anchorsOf := func(rel string) map[string]bool {
		if docAnchors[rel] == nil {
			docAnchors[rel] = anchors(readDoc(t, rel))
		}
		return docAnchors[rel]
	}
	readmeLinksContract := false
	for _, file := range docFiles(t) {
		doc := readDoc(t, file)
		for i, l := range strings.Split(doc, "\n") {
			if m := outside.FindString(l); m != "" {
				report(file, i+1, "%q points outside the repository: say it here or in docs/, and link there", strings.TrimSpace(m))
			}
		}
		for _, l := range links(doc) {
			target := l.target
			if target == "" {
				report(file, l.line, "empty link")
				continue
			}
			if u, err := url.Parse(target); err == nil && u.Scheme != "" {
				if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "mailto" {
					report(file, l.line, "link %s: only http, https and mailto addresses, or paths in the repository", target)
				}
				continue
			}
			p, frag, _ := strings.Cut(target, "#")
			p, _, _ = strings.Cut(p, "?")
			if unescaped, err := url.PathUnescape(p); err == nil {
				p = unescaped
			}
			var rel string
			switch {
			case p == "":
				rel = file
			case strings.HasPrefix(p, "/"):
				rel = path.Clean(strings.TrimPrefix(p, "/"))
			default:
				rel = path.Clean(path.Join(path.Dir(file), p))
			}
			if rel == ".." || strings.HasPrefix(rel, "../") {
				report(file, l.line, "link %s leads outside the repository", target)
				continue
			}
			fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
			if err != nil {
				report(file, l.line, "link %s: %s does not exist in the repository", target, rel)
				continue
			}
			if file == "README.md" && rel == "docs/contract.md" {
				readmeLinksContract = true
			}
			if frag != "" && !fi.IsDir() && strings.HasSuffix(rel, ".md") && !anchorsOf(rel)[frag] {
				report(file, l.line, "link %s: %s has no heading with the anchor #%s", target, rel, frag)
			}
		}
	}
	if !readmeLinksContract {
		problems = append(problems, "README.md: no link to docs/contract.md, the contract of the suite")
	}
	if len(problems) > 0 {
		t.Errorf("the documentation must stand alone:\n%s", strings.Join(problems, "\n"))
	}
}
