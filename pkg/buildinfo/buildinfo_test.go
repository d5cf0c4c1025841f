package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"link-time values win", "v1.4.0", "abc123", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: vcs}, Info{"v1.4.0", "abc123", runtime.Version()}},
		{"go install of a version", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}, Settings: vcs}, Info{"v1.2.0", "0123456789ab", runtime.Version()}},
		{"go build in a changed checkout", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: dirty}, Info{"dev", "0123456789ab-dirty", runtime.Version()}},
		{"nothing recorded", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, Info{"dev", "unknown", runtime.Version()}},
		{"no build information", "", "", nil, Info{"dev", "unknown", runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.version, tt.commit, func() (*debug.BuildInfo, bool) { return tt.bi, tt.bi != nil })
			if got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	got := Info{Version: "v1.4.0", Commit: "abc123", GoVersion: "go1.26.8"}.String()
	if want := "reco v1.4.0 (commit abc123, go1.26.8)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
