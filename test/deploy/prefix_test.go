package deploy

import (
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// recoVariable is a RECO_* name as the deployment files and scripts write one.
var recoVariable = regexp.MustCompile(`\bRECO_[A-Z0-9_]*[A-Z0-9]`)

// TestNoStrayRecoVariables: every RECO_* name in a deployment file, a script or
// the build files is a configuration variable. reco refuses to start with any
// other RECO_* variable in its environment, so a test or script variable with
// that prefix (the harness's are RECOTEST_*, the scripts' cache root
// RECOSCRIPTS_CACHE) would stop every process started beside it.
func TestNoStrayRecoVariables(t *testing.T) {
	keys := envKeys()
	var files []string
	for _, dir := range []string{"deploy", "scripts"} {
		err := filepath.WalkDir(repoPath(dir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"Dockerfile", "docker-compose.yml", "Makefile", ".ci/run"} {
		files = append(files, repoPath(f))
	}
	for _, path := range files {
		rel, _ := filepath.Rel(root, path)
		for i, line := range strings.Split(string(readRepoFile(t, rel)), "\n") {
			for _, name := range recoVariable.FindAllString(line, -1) {
				if _, ok := keys[name]; !ok {
					t.Errorf("%s:%d: %s is not a configuration variable (`reco config env`): RECO_ is the configuration's prefix, so fix the name or give a test or script variable another prefix (RECOTEST_)", rel, i+1, name)
				}
			}
		}
	}
}
