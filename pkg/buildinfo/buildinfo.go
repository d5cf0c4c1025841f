// Package buildinfo says which build of reco is running: its version, the
// commit it was built from and the Go version that built it, for
// `reco --version` and the reco_build_info metric of every process.
//
// `make build` sets version and commit at link time (-ldflags -X, see the
// Makefile). A binary built otherwise (go build, go install, a test binary)
// falls back to what the Go toolchain recorded in it: the module version of go
// install, the VCS revision when the build saw a checkout; and to "dev" and
// "unknown" when it recorded neither.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile:
//
//	-X github.com/toutiao-reco/toutiao-reco/pkg/buildinfo.version=...
//	-X github.com/toutiao-reco/toutiao-reco/pkg/buildinfo.commit=...
var (
	version string
	commit  string
)

// Info identifies a build.
type Info struct {
	Version   string
	Commit    string
	GoVersion string
}

// Get is this binary's Info.
func Get() Info { return resolve(version, commit, debug.ReadBuildInfo) }

// resolve is Info from the link-time values, falling back to read (the build
// information the toolchain embeds).
func resolve(version, commit string, read func() (*debug.BuildInfo, bool)) Info {
	info := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			info.Commit = revision(bi.Settings)
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// revision is the VCS revision the toolchain recorded, shortened as git
// does, with "-dirty" when the work tree had changes; "" when none was
// recorded (-buildvcs=false, or no checkout).
func revision(settings []debug.BuildSetting) string {
	var rev string
	dirty := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the line `reco --version` prints.
func (i Info) String() string {
	return fmt.Sprintf("reco %s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}
