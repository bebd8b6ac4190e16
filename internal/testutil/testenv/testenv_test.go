package testenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

func TestTailBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"one", 3, "one"},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 3, "a\nb\nc"},
		{"a\nb\nc\n\n\n", 1, "c"},
		{"a\nb", 0, ""},
	} {
		if got := testenv.TailBytes([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("TailBytes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root := testenv.RepoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "module github.com/switchboard-bridge/switchboard\n"; string(data[:len(want)]) != want {
		t.Errorf("%s/go.mod starts %q", root, data[:len(want)])
	}
}

func TestRequired(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want bool
	}{{"", false}, {"0", false}, {"1", true}, {"true", true}, {"yes", false}} {
		t.Setenv("SWITCHBOARD_TESTENV_PROBE", tc.val)
		if got := testenv.Required("SWITCHBOARD_TESTENV_PROBE"); got != tc.want {
			t.Errorf("Required with %q = %v", tc.val, got)
		}
	}
}

func TestProcessStopEscalates(t *testing.T) {
	// A shell that ignores SIGTERM must still be gone after Stop.
	p, err := testenv.StartProcess(exec.Command("sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the trap be installed
	began := time.Now()
	p.Stop(300 * time.Millisecond)
	if exited, _ := p.Exited(); !exited {
		t.Fatal("process still running after Stop")
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Errorf("Stop returned after %s, before the grace period", d)
	}
	p.Stop(time.Second) // a second Stop is a no-op
}

func TestWaitForNoticesExit(t *testing.T) {
	p, err := testenv.StartProcess(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.WaitFor(ctx, 10*time.Millisecond, func(context.Context) error { return os.ErrNotExist })
	if err == nil || ctx.Err() != nil {
		t.Fatalf("WaitFor = %v (ctx %v), want an early error for the exited process", err, ctx.Err())
	}
}
