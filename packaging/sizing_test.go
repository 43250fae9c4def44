package packaging

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fileSizeCap is the relay's bound on its bbolt file for a disk budget
// (cmd/pyrorelay fileSizeCap): the file may grow to twice the budget plus
// 64 MiB, so a volume must hold that much.
func fileSizeCap(budget int64) int64 { return 2*budget + 64<<20 }

// parseRelaySize reads a size the way the relay's config does: KiB, MiB,
// GiB, TiB, KB, MB, GB, TB, B or a plain number of bytes.
func parseRelaySize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			return int64(n * u.mult), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// parseQuantity reads a Kubernetes storage quantity: Ki, Mi, Gi, Ti, k, M,
// G, T or a plain number of bytes.
func parseQuantity(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			return int64(n * u.mult), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func TestSizeParsers(t *testing.T) {
	for _, tc := range []struct {
		in    string
		parse func(string) (int64, error)
		want  int64
	}{
		{"9GiB", parseRelaySize, 9 << 30},
		{"512MiB", parseRelaySize, 512 << 20},
		{"10GB", parseRelaySize, 10e9},
		{"1024", parseRelaySize, 1024},
		{"20Gi", parseQuantity, 20 << 30},
		{"500M", parseQuantity, 500e6},
		{"1073741824", parseQuantity, 1 << 30},
	} {
		got, err := tc.parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parse %q = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// TestVolumeFitsDiskBudget checks the sizing rule of docs/operations.md on
// the StatefulSet: each replica's volume holds the largest file its
// max_disk_usage allows, so the budget's 429 comes before a real disk-full.
func TestVolumeFitsDiskBudget(t *testing.T) {
	const file = "kubernetes/central-statefulset.yaml"
	var cfgText, storage string
	for _, d := range k8sDocs(t, file) {
		switch str(d["kind"]) {
		case "ConfigMap":
			cfgText = str(get(d, "data", "pyrorelay.yaml"))
		case "StatefulSet":
			storage = fmt.Sprint(get(d, "spec", "volumeClaimTemplates", 0, "spec", "resources", "requests", "storage"))
		}
	}
	var cfg struct {
		MaxDiskUsage string `yaml:"max_disk_usage"`
	}
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatalf("%s: ConfigMap pyrorelay.yaml: %v", file, err)
	}
	if cfg.MaxDiskUsage == "" {
		t.Fatalf("%s: the config sets no max_disk_usage: nothing keeps the queue inside the volume", file)
	}
	budget, err := parseRelaySize(cfg.MaxDiskUsage)
	if err != nil || budget <= 0 {
		t.Fatalf("%s: max_disk_usage %q: %v", file, cfg.MaxDiskUsage, err)
	}
	volume, err := parseQuantity(storage)
	if err != nil || volume <= 0 {
		t.Fatalf("%s: volume storage %q: %v", file, storage, err)
	}
	if need := fileSizeCap(budget); need > volume {
		t.Errorf("%s: max_disk_usage %s lets the file grow to %.2f GiB (2 x budget + 64 MiB), more than the %s volume: lower max_disk_usage to %.2f GiB or grow the volume",
			file, cfg.MaxDiskUsage, float64(need)/(1<<30), storage, float64(volume-64<<20)/2/(1<<30))
	}
}

// TestManifestImagesAreDocumented checks that the image the manifests run
// is one docs/operations.md says how to build and push: nobody else
// publishes it.
func TestManifestImagesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	imageRE := regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`)
	for _, file := range []string{"kubernetes/edge-daemonset.yaml", "kubernetes/central-statefulset.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imageRE.FindAllStringSubmatch(string(b), -1) {
			img := m[1]
			if !strings.Contains(img, "pyrorelay") {
				continue // helpers such as busybox come from their own publishers
			}
			if !strings.Contains(string(doc), img) {
				t.Errorf("%s runs %s, which docs/operations.md does not say how to build and push", file, img)
			}
		}
	}
	if !strings.Contains(string(doc), "packaging/docker/Dockerfile") || !strings.Contains(string(doc), "--push") {
		t.Error("docs/operations.md does not show building the image from packaging/docker/Dockerfile and pushing it")
	}
}
