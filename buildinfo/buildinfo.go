// Package buildinfo says which pyrorelay runs: the version and commit
// given to the linker, or else what the Go toolchain embedded in the
// binary; `pyrorelay version` prints it and the pyrorelay_build_info
// metric exports it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is which pyrorelay runs.
type Info struct {
	Version, Revision, GoVersion string
}

// String is what `pyrorelay version` prints: the version, revision, Go
// version and the platform the binary runs on.
func (i Info) String() string {
	return fmt.Sprintf("pyrorelay %s (revision %s, %s, %s/%s)", i.Version, i.Revision, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// Read is the Info of this binary. version and revision are what the
// linker flags set ("dev" and "" when they set nothing), and they win;
// otherwise the module and VCS data the Go toolchain embeds, so
// `go install ...@v1.2.3` reports v1.2.3. A revision nothing knows is
// "unknown"; one built from a modified tree ends in "-dirty".
func Read(version, revision string) Info {
	ver, rev, goVersion := version, revision, runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if rev == "" {
			rev = "unknown"
		}
		return Info{ver, rev, goVersion}
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
	return Info{ver, rev, goVersion}
}

// Register exports pyrorelay_build_info on reg, the usual constant-1
// gauge whose labels say what runs, so a dashboard can show the versions
// across a fleet and join them onto other series.
func Register(reg prometheus.Registerer, i Info) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pyrorelay_build_info",
		Help:        "Always 1; the labels say which version, commit and Go version run.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
