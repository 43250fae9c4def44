#!/usr/bin/env bash
# Regenerates the binary test payloads in testdata/:
#
#   cpu.pb.gz, heap.pb.gz, sample_type_config.json   (Go, runtime/pprof)
#   profile.jfr.gz                                   (JDK 17 Flight Recorder)
#
# folded.txt, speedscope.json and README.md are hand-written and left alone.
#
# Usage (from anywhere; paths are resolved relative to this script):
#   testdata/gen/make.sh            # regenerate everything
#   testdata/gen/make.sh pprof      # only the Go payloads
#   testdata/gen/make.sh jfr        # only the JFR payload
#
# Requires: go, java + javac (17+), gzip. `jfr` is used for a summary if present.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
testdata="$(cd "$here/.." && pwd)"
root="$(cd "$testdata/.." && pwd)"
what="${1:-all}"

gen_pprof() {
	echo ">> pprof: go run ./testdata/gen/pprof $testdata"
	# testdata/ is ignored by ./... patterns, but an explicit package path
	# works. Run from the module root so the module's go.mod is used; the
	# program imports only the standard library.
	(cd "$root" && go run ./testdata/gen/pprof "$testdata")
	gzip -t "$testdata/cpu.pb.gz" "$testdata/heap.pb.gz"
	if ! go tool pprof -top "$testdata/cpu.pb.gz" >/dev/null 2>&1; then
		echo "warning: go tool pprof could not read cpu.pb.gz" >&2
	fi
}

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

gen_jfr() {
	tmp="$(mktemp -d)"
	echo ">> jfr: javac + java -XX:StartFlightRecording in $tmp"
	javac -d "$tmp" "$here/jfr/Busy.java"
	# busy.jfc enables only jdk.ExecutionSample (10 ms), jdk.ObjectAllocationSample
	# and jdk.ActiveSetting, which keeps the recording small (~40 KiB gzipped).
	# The recording duration is longer than the run; the JVM dumps on exit.
	java -Xlog:jfr+startup=off \
		-XX:StartFlightRecording=duration=30s,dumponexit=true,filename="$tmp/profile.jfr",settings="$here/jfr/busy.jfc" \
		-cp "$tmp" Busy 2
	gzip -9 -n -c "$tmp/profile.jfr" >"$testdata/profile.jfr.gz"
	gzip -t "$testdata/profile.jfr.gz"
	if command -v jfr >/dev/null 2>&1; then
		jfr summary "$tmp/profile.jfr" | grep -E 'jdk\.(ExecutionSample|ObjectAllocationSample|ActiveSetting) ' || true
	fi
}

case "$what" in
all) gen_pprof; gen_jfr ;;
pprof) gen_pprof ;;
jfr) gen_jfr ;;
*) echo "usage: $0 [all|pprof|jfr]" >&2; exit 2 ;;
esac

ls -l "$testdata"/cpu.pb.gz "$testdata"/heap.pb.gz "$testdata"/sample_type_config.json "$testdata"/profile.jfr.gz 2>/dev/null || true
