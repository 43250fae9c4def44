package main

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// revision is the VCS commit, set at build time where the Go toolchain
// cannot read it (a Docker build without .git):
// -ldflags "-X main.revision=$(git rev-parse HEAD)".
var revision = ""

// versionInfo is what `pyrorelay version` prints and pyrorelay_build_info
// exports. The linker flags win; otherwise the module and VCS data the Go
// toolchain embeds, so `go install ...@v1.2.3` reports v1.2.3.
func versionInfo() (ver, rev, goVersion string) {
	ver, rev, goVersion = version, revision, runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if rev == "" {
			rev = "unknown"
		}
		return ver, rev, goVersion
	}
	if ver == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		ver = bi.Main.Version
	}
	if bi.GoVersion != "" {
		goVersion = bi.GoVersion
	}
	if rev == "" {
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev, goVersion
}

// registerBuildInfo exports pyrorelay_build_info, the usual constant-1
// gauge whose labels say what runs, so a dashboard can show the versions
// across a fleet and join them onto other series.
func registerBuildInfo(reg prometheus.Registerer) {
	ver, rev, goVersion := versionInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pyrorelay_build_info",
		Help:        "Always 1; the labels say which version, commit and Go version run.",
		ConstLabels: prometheus.Labels{"version": ver, "revision": rev, "goversion": goVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
