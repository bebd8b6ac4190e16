package dendrite

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// Version is the Dendrite release the harness runs and installs.
const Version = "v0.13.8"

// Module is Dendrite's Go module path.
const Module = "github.com/matrix-org/dendrite"

// EnvBinDir names the environment variable that points at a directory
// holding the dendrite, generate-keys and generate-config binaries. When
// the binaries are missing there they are installed into it.
const EnvBinDir = "SWITCHBOARD_DENDRITE_BIN"

// EnvRequire names the environment variable that, set to 1, turns a missing
// Dendrite from a skipped test into a failed one. CI sets it.
const EnvRequire = "SWITCHBOARD_REQUIRE_DENDRITE"

// installTimeout bounds one `go install` of Dendrite: about 90 s on a cold
// module and build cache on a 2-core machine.
const installTimeout = 10 * time.Minute

var binaries = []string{"dendrite", "generate-keys", "generate-config"}

var (
	installOnce sync.Once
	installDir  string
	installErr  error
)

// BinDir returns the directory holding the Dendrite binaries, installing them
// with `go install` on first use in this process. A file lock in the
// directory keeps parallel test processes from installing at the same time.
func BinDir() (string, error) {
	installOnce.Do(func() {
		installDir, installErr = findOrInstall()
	})
	return installDir, installErr
}

// InstallDir returns where the binaries are looked for and installed:
// SWITCHBOARD_DENDRITE_BIN when set, else a directory per Dendrite version in
// the user's cache directory (~/.cache/switchboard/dendrite-v0.13.8/bin), so
// that no other binary named generate-config is ever taken for Dendrite's.
func InstallDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return filepath.Abs(dir)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache directory (set %s instead): %w", EnvBinDir, err)
	}
	return filepath.Join(cache, "switchboard", "dendrite-"+Version, "bin"), nil
}

// InstallHint tells a person how to install the binaries by hand.
func InstallHint(dir string) string {
	var pkgs []string
	for _, b := range binaries {
		pkgs = append(pkgs, Module+"/cmd/"+b+"@"+Version)
	}
	return fmt.Sprintf("install Dendrite with `GOBIN=%s go install %s` (or set %s to a directory holding dendrite, generate-keys and generate-config)",
		dir, strings.Join(pkgs, " "), EnvBinDir)
}

func findOrInstall() (string, error) {
	dir, err := InstallDir()
	if err != nil {
		return "", err
	}
	if haveBinaries(dir) {
		return dir, nil
	}
	if err := install(dir); err != nil {
		return dir, err
	}
	return dir, nil
}

// haveBinaries reports whether all binaries are in dir. Outside an explicit
// SWITCHBOARD_DENDRITE_BIN it also checks that they were built from Dendrite
// at Version, so a stale cache is replaced.
func haveBinaries(dir string) bool {
	explicit := os.Getenv(EnvBinDir) != ""
	for _, b := range binaries {
		path := filepath.Join(dir, b)
		if _, err := os.Stat(path); err != nil {
			return false
		}
		if explicit {
			continue
		}
		info, err := buildinfo.ReadFile(path)
		if err != nil || info.Main.Path != Module || info.Main.Version != Version {
			return false
		}
	}
	return true
}

func install(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file unlocks too

	// Another process may have installed while we waited for the lock.
	if haveBinaries(dir) {
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not in PATH: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return fmt.Errorf("create temporary install directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	args := []string{"install"}
	for _, b := range binaries {
		args = append(args, Module+"/cmd/"+b+"@"+Version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	// `go install pkg@version` ignores the current module; run it from the
	// temporary directory anyway and clear settings that only make sense for
	// switchboard's own build.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, testenv.TailBytes(out, 30))
	}
	for _, b := range binaries {
		if err := os.Rename(filepath.Join(tmp, b), filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("move %s into %s: %w", b, dir, err)
		}
	}
	if !haveBinaries(dir) {
		return errors.New("go install finished but the binaries are not usable in " + dir)
	}
	return nil
}
