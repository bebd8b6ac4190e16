package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rssMB is the resident set size of process pid, from /proc/<pid>/status.
func rssMB(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is the process's user+system CPU time, utime+stime of
// /proc/<pid>/stat in clock ticks of 1/100 s (USER_HZ on Linux).
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// pprofClient fetches profiles from the daemon's /debug/pprof/ (on with
// appservice.pprof) into dir, named prefix-<kind>.pprof.
type pprofClient struct {
	base, token, dir string
}

// fetch saves /debug/pprof/<path> as dir/<name>.pprof and returns the file.
func (p pprofClient) fetch(ctx context.Context, path, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/debug/pprof/"+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("pprof %s: %s: %s (is appservice.pprof in this build?)", path, resp.Status, body)
	}
	file := filepath.Join(p.dir, name+".pprof")
	out, err := os.Create(file)
	if err != nil {
		return "", err
	}
	if _, err = io.Copy(out, resp.Body); err != nil {
		_ = out.Close()
		return "", err
	}
	return file, out.Close()
}

// pprofTop is `go tool pprof -top` of a profile: the first n entries by
// flat (or cumulative) value of sample index idx ("" for the default) at
// granularity gran ("lines", "filefunctions"), less base when base is not
// "" (for the cumulative allocation profile).
func pprofTop(t *testing.T, bin, file, base, idx, gran string, cum bool, n int) string {
	t.Helper()
	args := []string{"tool", "pprof", "-top", "-" + gran, "-nodecount=" + strconv.Itoa(n)}
	if cum {
		args = append(args, "-cum")
	}
	if idx != "" {
		args = append(args, "-sample_index="+idx)
	}
	if base != "" {
		args = append(args, "-base="+base)
	}
	args = append(args, bin, file)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go tool pprof: %v\n%s", err, out)
	}
	return string(out)
}

// memBreakdown describes what the resident pages of pid hold: anonymous
// memory (Go heap, stacks, SQLite's page cache) against file-backed pages
// (the binary's text and data), from /proc/<pid>/smaps_rollup, and the Go
// heap in use and obtained from the OS, from the daemon's /metrics.
func memBreakdown(t *testing.T, pid int, metricsURL string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	require.NoError(t, err)
	kb := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			kb[strings.TrimSuffix(f[0], ":")], _ = strconv.ParseFloat(f[1], 64)
		}
	}
	out := fmt.Sprintf("anonymous %.1f MB, file-backed %.1f MB", kb["Anonymous"]/1024, (kb["Rss"]-kb["Anonymous"])/1024)
	resp, err := http.Get(metricsURL)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return out
	}
	metric := func(name string) float64 {
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f / (1 << 20)
			}
		}
		return 0
	}
	return out + fmt.Sprintf("; Go heap in use %.1f MB, Go runtime total from the OS %.1f MB",
		metric("go_memstats_heap_inuse_bytes"), metric("go_memstats_sys_bytes"))
}
