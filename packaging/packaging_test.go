package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The relay's --shutdown-timeout default: every packaging must give the
// process longer than this to stop.
const shutdownTimeout = 30 * time.Second

var (
	buildOnce sync.Once
	relayBin  string
	buildErr  error
	buildOut  []byte
)

// relay builds the pyrorelay binary once for the package's tests.
func relay(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the relay binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pyrorelay-packaging-")
		if err != nil {
			buildErr = err
			return
		}
		relayBin = filepath.Join(dir, "pyrorelay")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildOut, buildErr = exec.CommandContext(ctx, goTool, "build", "-o", relayBin, "../cmd/pyrorelay").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ../cmd/pyrorelay: %v\n%s", buildErr, buildOut)
	}
	return relayBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if relayBin != "" {
		os.RemoveAll(filepath.Dir(relayBin))
	}
	os.Exit(code)
}

// configCheck runs `pyrorelay config check` with the flags a packaging
// passes to `serve` and fails the test unless the relay accepts them.
func configCheck(t *testing.T, where string, serveArgs []string, env []string) {
	t.Helper()
	if len(serveArgs) == 0 || serveArgs[0] != "serve" {
		t.Fatalf("%s: arguments %q do not start with serve", where, serveArgs)
	}
	args := append([]string{"config", "check"}, serveArgs[1:]...)
	cmd := exec.Command(relay(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYRORELAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s: pyrorelay %s: %v\n%s", where, strings.Join(args, " "), err, out)
	}
}

// k8sDocs reads a multi-document manifest.
func k8sDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if err.Error() == "EOF" {
				return docs
			}
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// get walks a decoded YAML document: get(doc, "spec", "template", 0).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any) string { s, _ := v.(string); return s }

func TestKubernetesManifests(t *testing.T) {
	tests := []struct {
		file, kind string
	}{
		{"kubernetes/edge-daemonset.yaml", "DaemonSet"},
		{"kubernetes/central-statefulset.yaml", "StatefulSet"},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			docs := k8sDocs(t, tc.file)
			byKind := map[string][]map[string]any{}
			for _, d := range docs {
				byKind[str(d["kind"])] = append(byKind[str(d["kind"])], d)
				if str(get(d, "metadata", "namespace")) != "pyrorelay" {
					t.Errorf("%s %s: namespace %v, want pyrorelay", d["kind"], get(d, "metadata", "name"), get(d, "metadata", "namespace"))
				}
			}
			if len(byKind[tc.kind]) != 1 || len(byKind["ConfigMap"]) != 1 {
				t.Fatalf("want one %s and one ConfigMap, got %v", tc.kind, byKind)
			}
			w := byKind[tc.kind][0]
			pod := get(w, "spec", "template", "spec")
			if v, _ := get(pod, "terminationGracePeriodSeconds").(int); time.Duration(v)*time.Second <= shutdownTimeout {
				t.Errorf("terminationGracePeriodSeconds %d: want more than the relay's %s shutdown timeout", v, shutdownTimeout)
			}
			if get(pod, "securityContext", "runAsNonRoot") != true {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			c := get(pod, "containers", 0)
			if str(get(c, "name")) != "pyrorelay" {
				t.Fatalf("first container is %v, want pyrorelay", get(c, "name"))
			}
			sc := get(c, "securityContext")
			if get(sc, "readOnlyRootFilesystem") != true || get(sc, "allowPrivilegeEscalation") != false || str(get(sc, "capabilities", "drop", 0)) != "ALL" {
				t.Errorf("container securityContext %v: want read-only root, no privilege escalation, all capabilities dropped", sc)
			}
			if p := str(get(c, "readinessProbe", "httpGet", "path")); p != "/-/ready" {
				t.Errorf("readinessProbe path %q, want /-/ready", p)
			}
			if p := str(get(c, "livenessProbe", "httpGet", "path")); p != "/-/healthy" {
				t.Errorf("livenessProbe path %q, want /-/healthy", p)
			}

			// The data volume is mounted where the config keeps the queue,
			// and it persists: a hostPath on the node, a claim per replica.
			cm := byKind["ConfigMap"][0]
			cfgText := str(get(cm, "data", "pyrorelay.yaml"))
			var cfg struct {
				DataDir string `yaml:"data_dir"`
			}
			if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil || cfg.DataDir == "" {
				t.Fatalf("ConfigMap pyrorelay.yaml: data_dir %q, err %v", cfg.DataDir, err)
			}
			mounts, _ := get(c, "volumeMounts").([]any)
			dataVolume := ""
			for _, m := range mounts {
				if str(get(m, "mountPath")) == cfg.DataDir {
					dataVolume = str(get(m, "name"))
				}
			}
			if dataVolume == "" {
				t.Fatalf("no volume mounted at data_dir %s", cfg.DataDir)
			}
			switch tc.kind {
			case "DaemonSet":
				found := false
				for _, v := range get(pod, "volumes").([]any) {
					found = found || (str(get(v, "name")) == dataVolume && get(v, "hostPath", "path") != nil)
				}
				if !found {
					t.Errorf("data volume %q is not a hostPath: the queue must survive the pod", dataVolume)
				}
				svc := byKind["Service"]
				if len(svc) != 1 || str(get(svc[0], "spec", "internalTrafficPolicy")) != "Local" {
					t.Error("edge Service must have internalTrafficPolicy: Local, so clients reach their node's relay")
				}
			case "StatefulSet":
				if str(get(w, "spec", "volumeClaimTemplates", 0, "metadata", "name")) != dataVolume {
					t.Errorf("volumeClaimTemplates[0] is not the data volume %q", dataVolume)
				}
				headless := str(get(w, "spec", "serviceName"))
				found := false
				for _, s := range byKind["Service"] {
					found = found || (str(get(s, "metadata", "name")) == headless && str(get(s, "spec", "clusterIP")) == "None")
				}
				if !found {
					t.Errorf("serviceName %q is not a headless Service in the file", headless)
				}
			}

			// The relay accepts the container's arguments and the config,
			// with the pod's paths moved into a temp dir.
			dir := t.TempDir()
			cfgText = strings.ReplaceAll(cfgText, "/etc/pyrorelay/", dir+"/")
			cfgText = strings.ReplaceAll(cfgText, cfg.DataDir, filepath.Join(dir, "data"))
			for _, m := range regexp.MustCompile(`(?m)^\s*bearer_token_file:\s*(\S+)`).FindAllStringSubmatch(cfgText, -1) {
				if err := os.MkdirAll(filepath.Dir(m[1]), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(m[1], []byte("token\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfgPath := filepath.Join(dir, "pyrorelay.yaml")
			if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
				t.Fatal(err)
			}
			var args []string
			for _, a := range get(c, "args").([]any) {
				s := str(a)
				if strings.HasPrefix(s, "--config=") {
					s = "--config=" + cfgPath
				}
				args = append(args, s)
			}
			configCheck(t, tc.file, args, nil)
		})
	}
}

// unitDirectives reads a systemd unit into key -> values.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: %q is not key=value", path, line)
			continue
		}
		out[k] = append(out[k], v)
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t, "systemd/pyrorelay.service")
	for k, want := range map[string]string{
		"User":                    "pyrorelay",
		"Group":                   "pyrorelay",
		"StateDirectory":          "pyrorelay",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
		"KillSignal":              "SIGTERM",
	} {
		if len(d[k]) == 0 || d[k][0] != want {
			t.Errorf("%s=%v, want %q", k, d[k], want)
		}
	}
	if !strings.Contains(strings.Join(d["SystemCallFilter"], " "), "@system-service") {
		t.Errorf("SystemCallFilter=%v, want @system-service", d["SystemCallFilter"])
	}
	stop, err := time.ParseDuration(strings.Join(d["TimeoutStopSec"], ""))
	if err != nil || stop <= shutdownTimeout {
		t.Errorf("TimeoutStopSec=%v: want more than the relay's %s shutdown timeout", d["TimeoutStopSec"], shutdownTimeout)
	}

	// The relay reads the config file itself, at start and at every
	// reload. A credential (LoadCredential=) is a copy made at start that
	// `systemctl reload` does not refresh: a reload would re-read the old
	// copy.
	for _, k := range []string{"LoadCredential", "LoadCredentialEncrypted", "SetCredential", "DynamicUser"} {
		if len(d[k]) > 0 {
			t.Errorf("%s=%v: the relay must read the file operators edit, as its own user", k, d[k])
		}
	}
	const configPath = "/etc/pyrorelay/pyrorelay.yaml"

	// ExecStart, ExecStartPre and the check of ExecReload run flags the
	// relay accepts, on the same config file.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pyrorelay.yaml"), []byte("destinations:\n  - {name: prod, url: http://p:4040}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("/etc/pyrorelay/", dir+"/", "${STATE_DIRECTORY}", filepath.Join(dir, "state"))
	for _, key := range []string{"ExecStart", "ExecStartPre", "ExecReload"} {
		want := 1
		if key == "ExecReload" {
			want = 2 // config check, then SIGHUP
		}
		if len(d[key]) != want {
			t.Fatalf("%s: want %d, got %v", key, want, d[key])
		}
		line := d[key][0]
		if !strings.Contains(line, "--config "+configPath+" ") {
			t.Errorf("%s %q: want --config %s, the file a reload re-reads", key, line, configPath)
		}
		fields := strings.Fields(vars.Replace(line))
		if fields[0] != "/usr/local/bin/pyrorelay" {
			t.Errorf("%s runs %s", key, fields[0])
		}
		args := fields[1:]
		if key != "ExecStart" {
			if strings.Join(args[:2], " ") != "config check" {
				t.Fatalf("%s %q: want a config check", key, line)
			}
			args = append([]string{"serve"}, args[2:]...)
		}
		configCheck(t, "systemd "+key, args, nil)
	}
	// The reload ends with SIGHUP to the relay, which re-reads its config
	// (cmd/pyrorelay/reload.go).
	if last := d["ExecReload"][len(d["ExecReload"])-1]; last != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%q: want the last step to be /bin/kill -HUP $MAINPID", last)
	}

	// The user the unit runs as is one the sysusers file creates.
	users := unitSysusers(t, "systemd/pyrorelay.sysusers.conf")
	if home, ok := users[d["User"][0]]; !ok || home != "/var/lib/pyrorelay" {
		t.Errorf("systemd/pyrorelay.sysusers.conf: user %s (home %q): want it, with home /var/lib/pyrorelay", d["User"][0], home)
	}
}

// unitSysusers reads a sysusers.d file's "u" lines into name -> home.
func unitSysusers(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fieldRE := regexp.MustCompile(`"[^"]*"|\S+`)
	for _, line := range strings.Split(string(b), "\n") {
		f := fieldRE.FindAllString(strings.TrimSpace(line), -1)
		if len(f) >= 5 && f[0] == "u" {
			out[f[1]] = f[4]
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var from, user, volume, entrypoint, cmd []string
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		rest := strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		switch f[0] {
		case "FROM":
			from = append(from, rest)
		case "USER":
			user = append(user, rest)
		case "VOLUME":
			volume = append(volume, rest)
		case "ENTRYPOINT":
			entrypoint = append(entrypoint, rest)
		case "CMD":
			cmd = append(cmd, rest)
		}
	}
	if len(from) < 2 {
		t.Errorf("FROM %v: want a multi-stage build", from)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-X main.version=", "-X main.revision=", "-trimpath"} {
		if !strings.Contains(text, want) {
			t.Errorf("the build does not set %s", want)
		}
	}
	if len(user) != 1 || strings.HasPrefix(user[0], "0") || strings.HasPrefix(user[0], "root") {
		t.Errorf("USER %v: want one, not root", user)
	}
	var vols []string
	if len(volume) != 1 || json.Unmarshal([]byte(volume[0]), &vols) != nil || len(vols) != 1 {
		t.Fatalf("VOLUME %v: want one JSON list with the data dir", volume)
	}
	var ep, args []string
	if len(entrypoint) != 1 || json.Unmarshal([]byte(entrypoint[0]), &ep) != nil || len(ep) != 1 {
		t.Fatalf("ENTRYPOINT %v: want [\"/usr/bin/pyrorelay\"]", entrypoint)
	}
	if len(cmd) != 1 || json.Unmarshal([]byte(cmd[0]), &args) != nil {
		t.Fatalf("CMD %v: want one JSON list", cmd)
	}
	dataDir := ""
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
			args[i+1] = filepath.Join(t.TempDir(), "data")
		}
	}
	if dataDir != vols[0] {
		t.Errorf("CMD --data-dir %q is not the VOLUME %q", dataDir, vols[0])
	}
	if !strings.Contains(text, "--chown=65532:65532 /out"+vols[0]) {
		t.Errorf("the data dir %s is not handed to the runtime user", vols[0])
	}
	configCheck(t, "Dockerfile CMD", args, nil)
}

// TestCompletionScripts installs the scripts the way packaging/completion
// says (from the binary) and completes with the bash one.
func TestCompletionScripts(t *testing.T) {
	bin := relay(t)
	scripts := map[string]string{}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, err := exec.Command(bin, "completion", shell).Output()
		if err != nil || !strings.Contains(string(out), "pyrorelay") {
			t.Fatalf("pyrorelay completion %s: %v\n%s", shell, err, out)
		}
		scripts[shell] = string(out)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	// Complete "pyrorelay con" and "pyrorelay config " with the real binary.
	script := scripts["bash"] + `
COMP_WORDS=(pyrorelay con); COMP_CWORD=1; _pyrorelay_complete; echo "${COMPREPLY[*]}"
COMP_WORDS=(pyrorelay config ""); COMP_CWORD=2; _pyrorelay_complete; echo "${COMPREPLY[*]}"`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "config" || !strings.Contains(" "+lines[1]+" ", " check ") {
		t.Errorf("completions %q, want \"config\" then a list with check", lines)
	}
}
