package contrib_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// requireDocker names the variable that turns a missing Docker daemon into
// a failure (.ci/run sets it when it could start dockerd).
const requireDocker = "SWITCHBOARD_REQUIRE_DOCKER"

// The static binary, built once per test run with the Dockerfile's flags.
var static struct {
	once sync.Once
	dir  string
	path string
	out  []byte
	err  error
}

// staticBinary builds ./cmd/switchboard exactly as the Dockerfile's builder
// stage and contrib/docker/build-local.sh do.
func staticBinary(t *testing.T) string {
	t.Helper()
	static.once.Do(func() {
		static.dir, static.err = os.MkdirTemp("", "switchboard-static-")
		if static.err != nil {
			return
		}
		static.path = filepath.Join(static.dir, "switchboard")
		cmd := exec.Command("go", "build", "-tags", "goolm", "-trimpath", "-ldflags", "-s -w",
			"-o", static.path, "./cmd/switchboard")
		cmd.Dir = testenv.RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		static.out, static.err = cmd.CombinedOutput()
	})
	if static.err != nil {
		t.Fatalf("build the static binary: %v\n%s", static.err, static.out)
	}
	return static.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if static.dir != "" {
		os.RemoveAll(static.dir)
	}
	os.Exit(code)
}

// TestStaticBinary checks what the image relies on: the binary runs in an
// empty FROM scratch image (no dynamic loader, no shared libraries), has
// end-to-end encryption compiled in, and is stripped.
func TestStaticBinary(t *testing.T) {
	bin := staticBinary(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it needs a dynamic loader, which a FROM scratch image lacks")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a PT_DYNAMIC program header: it is dynamically linked")
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("the binary has a .dynamic section")
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("imported libraries = %v (err %v), want none", libs, err)
	}
	if s := f.Section(".symtab"); s != nil {
		t.Error("the binary has a symbol table: -ldflags '-s -w' did not strip it")
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for key, want := range map[string]string{
		"CGO_ENABLED": "0",
		"-tags":       "goolm",
		"-trimpath":   "true",
	} {
		if got := settings[key]; got != want {
			t.Errorf("build setting %s = %q, want %q", key, got, want)
		}
	}
	if info.Main.Path != "github.com/switchboard-bridge/switchboard" {
		t.Errorf("main module = %q", info.Main.Path)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "switchboard ") {
		t.Errorf("switchboard version: %v, %q", err, out)
	}
}

// TestNoReflectiveTemplates: the daemon links neither text/template nor
// html/template. Their reflective method calls make the linker keep every
// exported method of every package: the binary doubled (42 → 85 MB) and
// its idle RSS grew by 13 MB when the web page used html/template.
func TestNoReflectiveTemplates(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-tags", "goolm", "./cmd/switchboard")
	cmd.Dir = testenv.RepoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "text/template" || pkg == "html/template" {
			t.Errorf("cmd/switchboard depends on %s (go mod why -m / go list -deps tells through what)", pkg)
		}
	}
}

// TestSystemdUnit checks contrib/systemd/switchboard.service: the hardening
// it promises is there, systemd-analyze verify accepts it, and its offline
// security exposure stays low.
func TestSystemdUnit(t *testing.T) {
	root := testenv.RepoRoot(t)
	unitPath := filepath.Join(root, "contrib", "systemd", "switchboard.service")
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	settings := parseUnit(t, data)

	for _, tc := range []struct{ key, want string }{
		{"ExecStart", "/usr/local/bin/switchboard -c /var/lib/switchboard/config.yaml"},
		{"WorkingDirectory", "/var/lib/switchboard"},
		{"DynamicUser", "yes"},
		{"StateDirectory", "switchboard"},
		{"StateDirectoryMode", "0700"},
		{"UMask", "0077"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"NoNewPrivileges", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"SystemCallFilter", "@system-service"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"RestrictSUIDSGID", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"Restart", "on-failure"},
	} {
		got, ok := settings[tc.key]
		switch {
		case !ok:
			t.Errorf("%s is not set", tc.key)
		case !contains(got, tc.want):
			t.Errorf("%s = %q, want %q among them", tc.key, got, tc.want)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); the unit's settings were checked, verify was not run")
	}
	// verify wants ExecStart's binary to exist: point it at the one built
	// here, in a copy of the unit.
	bin := staticBinary(t)
	copyDir := t.TempDir()
	copyPath := filepath.Join(copyDir, "switchboard.service")
	rewritten := strings.Replace(string(data), "ExecStart=/usr/local/bin/switchboard ", "ExecStart="+bin+" ", 1)
	if rewritten == string(data) {
		t.Fatal("ExecStart does not start with /usr/local/bin/switchboard")
	}
	if err := os.WriteFile(copyPath, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The exposure level systemd-analyze security gives (0 best, 10
	// worst); --threshold is in tenths.
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", copyPath).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for [^:]*: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze security: exposure %s", m[1])
	if err != nil {
		t.Errorf("exposure %s is above 2.0: %v\n%s", m[1], err, out)
	}
}

// parseUnit reads a unit file into key → values (a key given several
// times collects every value, in order).
func parseUnit(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line without '=': %q", line)
		}
		out[strings.TrimSpace(k)] = append(out[strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestContainerImage builds the image as contrib/docker/build-local.sh does
// (the Dockerfile's final stage on a binary built here), checks that it
// holds only the binary, the CA bundle, /data and /tmp, runs it as a user
// would (a named volume on /data, the port published) and checks that it
// answers /health, writes its config into the volume as its non-root user,
// stops cleanly on SIGTERM and starts again from the same volume.
func TestContainerImage(t *testing.T) {
	docker := dockerOrSkip(t)
	root := testenv.RepoRoot(t)
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	tag := "switchboard-test:" + suffix
	volume := "switchboard-test-" + suffix

	build := exec.Command(filepath.Join(root, "contrib", "docker", "build-local.sh"), tag)
	build.Dir = root
	build.Env = append(os.Environ(), "DOCKER="+docker, "VERSION=9.9.9-test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build-local.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = dockerRun(docker, "rmi", "-f", tag) })

	t.Run("config", func(t *testing.T) {
		out := mustDocker(t, docker, "image", "inspect", "--format", "{{json .Config}}", tag)
		var cfg struct {
			User         string
			WorkingDir   string
			Env          []string
			Entrypoint   []string
			Cmd          []string
			ExposedPorts map[string]struct{}
			Volumes      map[string]struct{}
		}
		if err := json.Unmarshal([]byte(out), &cfg); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if cfg.User != "10001:10001" {
			t.Errorf("User = %q, want the non-root 10001:10001", cfg.User)
		}
		if cfg.WorkingDir != "/data" {
			t.Errorf("WorkingDir = %q", cfg.WorkingDir)
		}
		if !contains(cfg.Env, "SWITCHBOARD_APPSERVICE_LISTEN=0.0.0.0:29340") {
			t.Errorf("Env = %q, want the listener on 0.0.0.0:29340", cfg.Env)
		}
		if got := strings.Join(append(cfg.Entrypoint, cfg.Cmd...), " "); got != "/usr/local/bin/switchboard -c /data/config.yaml" {
			t.Errorf("command = %q", got)
		}
		if _, ok := cfg.ExposedPorts["29340/tcp"]; !ok {
			t.Errorf("ExposedPorts = %v", cfg.ExposedPorts)
		}
		if _, ok := cfg.Volumes["/data"]; !ok {
			t.Errorf("Volumes = %v", cfg.Volumes)
		}
	})

	t.Run("files", func(t *testing.T) {
		files := imageFiles(t, docker, tag)
		want := map[string]struct {
			dir      bool
			mode     int64
			uid, gid int
		}{
			"usr/local/bin/switchboard":         {mode: 0o755},
			"etc/ssl/certs/ca-certificates.crt": {mode: 0o644},
			"data":                              {dir: true, mode: 0o700, uid: 10001, gid: 10001},
			"tmp":                               {dir: true, mode: 0o1777},
		}
		for name, w := range want {
			h, ok := files[name]
			if !ok {
				t.Errorf("image lacks /%s", name)
				continue
			}
			if (h.Typeflag == tar.TypeDir) != w.dir || h.Mode&0o7777 != w.mode || h.Uid != w.uid || h.Gid != w.gid {
				t.Errorf("/%s: type %c mode %o owner %d:%d, want dir=%v mode %o owner %d:%d",
					name, h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid, w.dir, w.mode, w.uid, w.gid)
			}
		}
		for name, h := range files {
			if _, ok := want[name]; !ok && h.Typeflag != tar.TypeDir {
				t.Errorf("image holds /%s, which is neither the binary nor the CA bundle", name)
			}
		}
	})

	t.Run("run", func(t *testing.T) {
		t.Cleanup(func() { _, _ = dockerRun(docker, "volume", "rm", "-f", volume) })
		id := mustDocker(t, docker, "run", "-d", "-p", "127.0.0.1::29340", "-v", volume+":/data", tag)
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := dockerRun(docker, "logs", id)
				t.Logf("container logs:\n%s", logs)
			}
			_, _ = dockerRun(docker, "rm", "-f", id)
		})

		waitHealth(t, docker, id)

		cfg := copyOut(t, docker, id, "/data/config.yaml")
		if cfg.hdr.Uid != 10001 || cfg.hdr.Mode&0o777 != 0o600 {
			t.Errorf("/data/config.yaml: owner %d mode %o, want the container user 10001 and 0600", cfg.hdr.Uid, cfg.hdr.Mode&0o777)
		}
		if regexp.MustCompile(`(?m):\s*generate\s*$`).Match(cfg.data) {
			t.Error("/data/config.yaml still holds 'generate' placeholders")
		}
		reg := copyOut(t, docker, id, "/data/registration.yaml")
		if !strings.Contains(string(reg.data), "as_token:") {
			t.Errorf("/data/registration.yaml is not a registration:\n%s", reg.data)
		}
		if v, _ := dockerRun(docker, "exec", id, "/usr/local/bin/switchboard", "version"); !strings.Contains(v, "9.9.9-test") {
			t.Errorf("switchboard version in the container = %q, want the VERSION it was built with", v)
		}

		mustDocker(t, docker, "stop", "-t", "30", id)
		if code := mustDocker(t, docker, "inspect", "--format", "{{.State.ExitCode}}", id); code != "0" {
			t.Errorf("exit code after docker stop = %s, want 0 (SIGTERM handled)", code)
		}

		// Started again on the same volume: the config is kept, no first run.
		mustDocker(t, docker, "start", id)
		waitHealth(t, docker, id)
		if again := copyOut(t, docker, id, "/data/config.yaml"); !bytes.Equal(again.data, cfg.data) {
			t.Error("the config changed when the container started again")
		}
		logs, _ := dockerRun(docker, "logs", id)
		if n := strings.Count(logs, "first run"); n != 1 {
			t.Errorf("'first run' printed %d times over two starts, want once", n)
		}
		if n := strings.Count(logs, "switchboard is running"); n != 2 {
			t.Errorf("'switchboard is running' logged %d times over two starts, want twice", n)
		}
	})
}

// dockerOrSkip returns the docker client when a daemon answers, and skips
// (or, with SWITCHBOARD_REQUIRE_DOCKER=1, fails) otherwise.
func dockerOrSkip(t *testing.T) string {
	t.Helper()
	docker, err := exec.LookPath("docker")
	if err != nil {
		testenv.SkipUnlessRequired(t, requireDocker,
			"no docker client: the image cannot be built here (Debian: apt-get install docker.io, then start dockerd)")
	}
	if out, err := dockerRun(docker, "info", "--format", "{{.ServerVersion}}"); err != nil {
		testenv.SkipUnlessRequired(t, requireDocker,
			"no Docker daemon answers ("+strings.TrimSpace(lastLine(out))+"): start dockerd, or set DOCKER_HOST")
	}
	return docker
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// dockerRun runs the docker client with a bound on how long it may take.
func dockerRun(docker string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
	return string(out), err
}

func mustDocker(t *testing.T, docker string, args ...string) string {
	t.Helper()
	out, err := dockerRun(docker, args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// waitHealth waits until the container's published port answers /health
// with a JSON status.
func waitHealth(t *testing.T, docker, id string) {
	t.Helper()
	port := mustDocker(t, docker, "port", id, "29340/tcp")
	addr := strings.TrimSpace(strings.Split(port, "\n")[0])
	url := "http://" + addr + "/health"
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if running := mustDocker(t, docker, "inspect", "--format", "{{.State.Running}}", id); running != "true" {
			t.Fatalf("the container stopped before answering %s", url)
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var h struct {
				Status string `json:"status"`
			}
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &h) == nil && h.Status != "" {
				t.Logf("GET %s: %s", url, bytes.TrimSpace(body))
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s never answered with a status; last: %s", url, last)
}

type copied struct {
	hdr  *tar.Header
	data []byte
}

// copyOut reads one file out of a container (docker cp gives a tar).
func copyOut(t *testing.T, docker, id, path string) copied {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, docker, "cp", id+":"+path, "-").Output()
	if err != nil {
		t.Fatalf("docker cp %s: %v", path, err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatalf("docker cp %s: %v", path, err)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return copied{hdr: hdr, data: data}
}

// imageFiles lists every file of an image's layers (docker save), keyed
// by path without the leading slash or a trailing one.
func imageFiles(t *testing.T, docker, tag string) map[string]*tar.Header {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	saved, err := exec.CommandContext(ctx, docker, "save", tag).Output()
	if err != nil {
		t.Fatalf("docker save: %v", err)
	}
	entries := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(saved))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if entries[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("docker save manifest.json: %v (%d images)", err, len(manifest))
	}
	files := map[string]*tar.Header{}
	for _, layer := range manifest[0].Layers {
		data, ok := entries[layer]
		if !ok {
			t.Fatalf("docker save: layer %s missing", layer)
		}
		lr := tar.NewReader(bytes.NewReader(data))
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", layer, err)
			}
			files[strings.Trim(h.Name, "/")] = h
		}
	}
	return files
}
