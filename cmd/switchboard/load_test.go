package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// TestDaemonLoad is the load tool of issue 16: it measures the SMS path
// Matrix → SMS as production runs it and prints the table. The
// daemon binary runs as its own process against a real Dendrite and a
// recording fake Twilio reached over TLS (its certificate trusted through
// SSL_CERT_FILE), with SMS pacing and rate limits off. For each row, 500
// messages from one Matrix user are pushed into the appservice endpoint as
// a homeserver does — one transaction at a time, of 1 or of 50 events —
// to 1 SMS contact (1 portal) or spread over 100 (100 portals). Reported:
// msg/s until the last SMS reached the fake Twilio (and until the last
// transaction was acknowledged), CPU per message from /proc/<pid>/stat
// (utime+stime until the queue is empty ÷ messages), RSS idle and after,
// latency from the homeserver accepting a send (client API, one sender) to
// the fake Twilio receiving it, and lost / duplicated / out-of-order
// messages. Loopback only; every wait is bounded.
//
//	SWITCHBOARD_LOAD=1 go test -tags goolm -run 'DaemonLoad/sqlite' -v -timeout 30m ./cmd/switchboard
//	SWITCHBOARD_LOAD=1 SWITCHBOARD_TEST_POSTGRES=postgres://… go test -tags goolm -run 'DaemonLoad/postgres' -v -timeout 30m ./cmd/switchboard
//
// Knobs: SWITCHBOARD_LOAD_BIN=/path/switchboard measures another build
// (an older commit) instead of this tree's; SWITCHBOARD_LOAD_REPEAT
// (default 3) runs of every row; SWITCHBOARD_LOAD_MESSAGES (default 500);
// SWITCHBOARD_LOAD_LOG (default info); SWITCHBOARD_LOAD_KEEP_LOG=FILE
// keeps the daemon's log (at trace level it lists every query);
// SWITCHBOARD_LOAD_STATUS_EVENTS=0 switches message status events off; SWITCHBOARD_LOAD_HTTP2=1 lets the
// fake Twilio negotiate HTTP/2; SWITCHBOARD_LOAD_PROFILE=DIR writes a CPU,
// allocation and heap profile per row into DIR (needs appservice.pprof in
// the build) and prints their top entries. For finding out what a number
// depends on: SWITCHBOARD_LOAD_ROWS=p1e1,p100e50 runs only those rows
// (portals, events per transaction) and SWITCHBOARD_LOAD_LATENCY=0 skips
// the run through Dendrite; SWITCHBOARD_LOAD_CONCURRENCY=8 pushes that
// many transactions at once (no homeserver does) and
// SWITCHBOARD_LOAD_PLAIN=1 serves the fake Twilio over plain HTTP — the
// old tool's two shortcuts.
func TestDaemonLoad(t *testing.T) {
	if os.Getenv("SWITCHBOARD_LOAD") == "" {
		t.Skip("load tool: set SWITCHBOARD_LOAD=1 to run it")
	}
	s := loadSettings{
		bin: binary, logLevel: envOr("SWITCHBOARD_LOAD_LOG", "info"),
		http2: os.Getenv("SWITCHBOARD_LOAD_HTTP2") == "1", plain: os.Getenv("SWITCHBOARD_LOAD_PLAIN") == "1",
		concurrency: envInt(t, "SWITCHBOARD_LOAD_CONCURRENCY", 1), latency: os.Getenv("SWITCHBOARD_LOAD_LATENCY") != "0",
		rows: loadRows,
	}
	if v := os.Getenv("SWITCHBOARD_LOAD_ROWS"); v != "" {
		s.rows = nil
		for _, f := range strings.Split(v, ",") {
			var r loadRow
			_, err := fmt.Sscanf(f, "p%de%d", &r.portals, &r.perTxn)
			require.NoError(t, err, "SWITCHBOARD_LOAD_ROWS: %q is not p<portals>e<events>", f)
			require.True(t, r.portals >= 1 && r.portals <= 100 && r.perTxn >= 1 && r.perTxn <= 100, "SWITCHBOARD_LOAD_ROWS: %q out of range", f)
			s.rows = append(s.rows, r)
		}
	}
	if b := os.Getenv("SWITCHBOARD_LOAD_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		require.NoError(t, err)
		s.bin = abs
	}
	repeat := envInt(t, "SWITCHBOARD_LOAD_REPEAT", 3)
	n := envInt(t, "SWITCHBOARD_LOAD_MESSAGES", 500)
	profDir := os.Getenv("SWITCHBOARD_LOAD_PROFILE")
	if profDir != "" {
		s.profile = true
		require.NoError(t, os.MkdirAll(profDir, 0o755))
	}
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			s := s
			s.db = be.Options(t)
			runLoad(t, s, be.Name, repeat, n, profDir)
		})
	}
}

// loadRow is one row of the table: portals × events per transaction.
type loadRow struct{ portals, perTxn int }

func (r loadRow) String() string {
	return fmt.Sprintf("%d event(s)/txn, %d portal(s)", r.perTxn, r.portals)
}

// rowResult is one run of a row.
type rowResult struct {
	msgPerSec, ackPerSec, cpuMs float64
	lost, dup, outOfOrder       int
}

var loadRows = []loadRow{{1, 1}, {1, 50}, {100, 1}, {100, 50}}

func runLoad(t *testing.T, s loadSettings, backend string, repeat, n int, profDir string) {
	d := startLoadDaemon(t, s)
	pid := d.proc.Process.Pid
	time.Sleep(3 * time.Second)
	rssStart := rssMB(t, pid)
	setUpStart := time.Now()
	portals := 1
	for _, r := range s.rows {
		portals = max(portals, r.portals)
	}
	d.setUp(t, portals)
	t.Logf("set up: alice, SMS on, %d portal(s) in %s", portals, time.Since(setUpStart).Round(time.Second))
	d.settle(t)
	time.Sleep(time.Second)
	idleCPU0 := cpuSeconds(t, pid)
	time.Sleep(5 * time.Second)
	idleCPU := (cpuSeconds(t, pid) - idleCPU0) * 1000 / 5
	rssIdle := rssMB(t, pid)
	memIdle := memBreakdown(t, pid, "http://"+d.listen+"/metrics")

	results := map[loadRow][]rowResult{}
	var lat50, lat99, latRate, hs50, br50, br99, ack50 []float64
	var latLost, latDup, latOOO int
	for rep := 1; rep <= repeat; rep++ {
		for _, row := range s.rows {
			run := fmt.Sprintf("r%dp%de%d", rep, row.portals, row.perTxn)
			res := d.pushRun(t, run, n, row, s.concurrency)
			t.Logf("run %d, %s: %.0f msg/s delivered, %.0f msg/s acknowledged, %.2f ms CPU/msg, lost %d dup %d out of order %d",
				rep, row, res.msgPerSec, res.ackPerSec, res.cpuMs, res.lost, res.dup, res.outOfOrder)
			results[row] = append(results[row], res)
		}
		if !s.latency {
			continue
		}
		lr, tl := d.latencyRun(t, fmt.Sprintf("r%dlat", rep), n)
		t.Logf("run %d, through Dendrite (1 sender, 1 portal): accepted→Twilio p50 %.1f ms p99 %.1f ms, %.0f msg/s, lost %d dup %d out of order %d; split p50: homeserver %.1f ms, bridge %.1f ms (p99 %.1f), transaction acknowledged in %.1f ms",
			rep, lr.p50, lr.p99, lr.rate, tl.lost, tl.dup, tl.outOfOrder, lr.hs50, lr.bridge50, lr.bridge99, lr.ack50)
		lat50, lat99, latRate = append(lat50, lr.p50), append(lat99, lr.p99), append(latRate, lr.rate)
		hs50, br50, br99, ack50 = append(hs50, lr.hs50), append(br50, lr.bridge50), append(br99, lr.bridge99), append(ack50, lr.ack50)
		latLost, latDup, latOOO = latLost+tl.lost, latDup+tl.dup, latOOO+tl.outOfOrder
	}
	rssAfter := rssMB(t, pid)
	memAfter := memBreakdown(t, pid, "http://"+d.listen+"/metrics")
	// And once the daemon has been quiet for a while (it returns freed
	// heap to the system when idle).
	time.Sleep(10 * time.Second)
	rssSettled := rssMB(t, pid)

	var lost, dup, ooo int
	var b strings.Builder
	twilio := fmt.Sprintf("over TLS (HTTP/2 %v)", s.http2)
	if s.plain {
		twilio = "over plain HTTP"
	}
	fmt.Fprintf(&b, "\nswitchboard load: %s on %s, %d messages per run, %d runs (ranges are min–max), log level %s, Twilio %s, %d transaction(s) at a time\n\n",
		s.bin, backend, n, repeat, s.logLevel, twilio, s.concurrency)
	fmt.Fprintf(&b, "| row | msg/s delivered | CPU ms/msg | msg/s acknowledged |\n|---|---|---|---|\n")
	for _, row := range s.rows {
		var rate, ack, cpu []float64
		for _, r := range results[row] {
			rate, ack, cpu = append(rate, r.msgPerSec), append(ack, r.ackPerSec), append(cpu, r.cpuMs)
			lost, dup, ooo = lost+r.lost, dup+r.dup, ooo+r.outOfOrder
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row, span(rate, "%.0f"), span(cpu, "%.2f"), span(ack, "%.0f"))
	}
	if s.latency {
		fmt.Fprintf(&b, "| latency after the homeserver accepted, p50 / p99 (through Dendrite, one sender, 1 portal) | %s / %s ms | | %s msg/s |\n",
			span(lat50, "%.1f"), span(lat99, "%.1f"), span(latRate, "%.0f"))
		fmt.Fprintf(&b, "| of which the homeserver (accepted → transaction at the bridge), p50 | %s ms | | |\n", span(hs50, "%.1f"))
		fmt.Fprintf(&b, "| of which the bridge (transaction at the bridge → Twilio), p50 / p99 | %s / %s ms | | |\n", span(br50, "%.1f"), span(br99, "%.1f"))
		fmt.Fprintf(&b, "| transaction acknowledged by the bridge, p50 | %s ms | | |\n", span(ack50, "%.1f"))
	}
	fmt.Fprintf(&b, "| RSS at start / idle with %d portal(s) / right after the runs / 10 s later | %.1f / %.1f / %.1f / %.1f MB | | |\n", portals, rssStart, rssIdle, rssAfter, rssSettled)
	fmt.Fprintf(&b, "| resident memory idle / after | %s / %s | | |\n", memIdle, memAfter)
	fmt.Fprintf(&b, "| CPU while idle (included in CPU/msg for the time a run takes) | %.1f ms/s | | |\n", idleCPU)
	fmt.Fprintf(&b, "| lost, duplicated, out of order (all runs) | %d / %d / %d | | |\n", lost+latLost, dup+latDup, ooo+latOOO)
	t.Log(b.String())

	if profDir != "" {
		prefix := filepath.Join(profDir, backend)
		for _, row := range s.rows {
			d.profileRow(t, n, row, s.concurrency, fmt.Sprintf("%s-p%d-e%d", prefix, row.portals, row.perTxn))
		}
	}
}

// span formats the range of vs as "min–max" (or one value).
func span(vs []float64, format string) string {
	if len(vs) == 0 {
		return "-"
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	if fmt.Sprintf(format, lo) == fmt.Sprintf(format, hi) {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+"–"+format, lo, hi)
}

// pushRun pushes n messages of row as alice into the appservice endpoint,
// one transaction at a time as a homeserver does (or concurrency at a
// time), and waits for all of them at the fake Twilio and for the
// daemon's queue to empty.
func (d *loadDaemon) pushRun(t *testing.T, run string, n int, row loadRow, concurrency int) rowResult {
	t.Helper()
	// Build every transaction first: the sender's own work is not measured.
	type txn struct {
		id   string
		body []byte
	}
	var txns []txn
	for first := 0; first < n; first += row.perTxn {
		events := make([]map[string]any, 0, row.perTxn)
		for i := first; i < min(first+row.perTxn, n); i++ {
			events = append(events, map[string]any{
				"type": "m.room.message", "room_id": d.portals[i%row.portals], "sender": d.alice,
				"event_id": fmt.Sprintf("$%s-%d", run, i), "origin_server_ts": time.Now().UnixMilli(),
				"content": map[string]any{"msgtype": "m.text", "body": loadBody(run, i)},
			})
		}
		body, err := json.Marshal(map[string]any{"events": events})
		require.NoError(t, err)
		txns = append(txns, txn{id: fmt.Sprintf("%s-%d", run, first), body: body})
	}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	base := "http://" + d.listen + "/_matrix/app/v1/transactions/"
	cpu0 := cpuSeconds(t, d.proc.Process.Pid)
	start := time.Now()
	next := make(chan txn)
	errs := make(chan error, concurrency)
	for w := 0; w < concurrency; w++ {
		go func() {
			var err error
			for tx := range next {
				if err == nil {
					err = d.putTxn(client, base+tx.id, tx.body)
				}
			}
			errs <- err
		}()
	}
	for _, tx := range txns {
		next <- tx
	}
	close(next)
	for w := 0; w < concurrency; w++ {
		require.NoError(t, <-errs)
	}
	acked := time.Since(start)
	d.waitArrived(t, run, n)
	d.settle(t)
	cpu := cpuSeconds(t, d.proc.Process.Pid) - cpu0
	tl := d.twilio.tally(run, n)
	return rowResult{
		msgPerSec: float64(n) / tl.last.Sub(start).Seconds(), ackPerSec: float64(n) / acked.Seconds(),
		cpuMs: cpu * 1000 / float64(n), lost: tl.lost, dup: tl.dup, outOfOrder: tl.outOfOrder,
	}
}

// putTxn sends one appservice transaction as the homeserver does.
func (d *loadDaemon) putTxn(client *http.Client, u string, body []byte) error {
	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+d.hsToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	// Read to the end so the connection is reused, as a homeserver's is.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("transaction %s: %s", u, resp.Status)
	}
	return nil
}

// waitArrived waits (at most two minutes) until all n messages of run
// reached the fake Twilio; what is missing then counts as lost.
func (d *loadDaemon) waitArrived(t *testing.T, run string, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for d.twilio.arrived(run, n) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// latencyRun sends n messages as alice through Dendrite's client API to
// the first portal, one after the other as one client does, and returns
// the p50 and p99 in ms from the homeserver's answer to the fake Twilio's
// receipt, and the rate.
func (d *loadDaemon) latencyRun(t *testing.T, run string, n int) (res latencyResult, tl loadTally) {
	t.Helper()
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(d.portals[0]) + "/send/m.room.message/"
	accepted := make([]time.Time, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		status := d.hs.DoJSON(t, http.MethodPut, path+run+"-"+strconv.Itoa(i), d.token,
			map[string]any{"msgtype": "m.text", "body": loadBody(run, i)}, nil)
		accepted[i] = time.Now()
		require.Equal(t, http.StatusOK, status)
	}
	d.waitArrived(t, run, n)
	d.settle(t)
	tl = d.twilio.tally(run, n)
	lat := make([]float64, 0, n)
	var hsPart, bridgePart, ackPart []float64
	for i, at := range tl.first {
		if at.IsZero() {
			continue
		}
		lat = append(lat, ms(at.Sub(accepted[i])))
		if arrived, acked := d.proxy.times(loadBody(run, i)); !arrived.IsZero() {
			hsPart = append(hsPart, ms(arrived.Sub(accepted[i])))
			bridgePart = append(bridgePart, ms(at.Sub(arrived)))
			ackPart = append(ackPart, ms(acked.Sub(arrived)))
		}
	}
	if len(lat) == 0 {
		return latencyResult{}, tl
	}
	return latencyResult{
		p50: pct(lat, 50), p99: pct(lat, 99), rate: float64(n) / tl.last.Sub(start).Seconds(),
		hs50: pct(hsPart, 50), bridge50: pct(bridgePart, 50), bridge99: pct(bridgePart, 99), ack50: pct(ackPart, 50),
	}, tl
}

// latencyResult is one latency run: end to end (homeserver accepted →
// fake Twilio) and its split at the proxy in front of the daemon: the
// homeserver's share (accepted → transaction arrived), the bridge's
// (arrived → Twilio) and the transaction's acknowledgement (arrived → 200).
type latencyResult struct {
	p50, p99, rate           float64
	hs50, bridge50, bridge99 float64
	ack50                    float64
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct is the p-th percentile of vs (sorted in place); 0 for none.
func pct(vs []float64, p int) float64 {
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[min(len(vs)-1, len(vs)*p/100)]
}

// profileRow runs row over and over while the daemon records a CPU
// profile (SWITCHBOARD_LOAD_PROFILE_SECONDS, default 10), takes the
// allocations made meanwhile and the heap after, writes them as
// prefix-{cpu,allocs-before,allocs,heap}.pprof and prefix-top.txt, and
// logs their top entries.
func (d *loadDaemon) profileRow(t *testing.T, n int, row loadRow, concurrency int, prefix string) {
	t.Helper()
	secs := envInt(t, "SWITCHBOARD_LOAD_PROFILE_SECONDS", 10)
	p := *d.pprof
	p.dir = filepath.Dir(prefix)
	name := filepath.Base(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+60)*time.Second)
	defer cancel()
	allocsBase, err := p.fetch(ctx, "allocs", name+"-allocs-before")
	require.NoError(t, err)
	type result struct {
		file string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		f, err := p.fetch(ctx, "profile?seconds="+strconv.Itoa(secs), name+"-cpu")
		done <- result{f, err}
	}()
	var cpu result
	msgs := 0
	for i := 0; ; i++ {
		select {
		case cpu = <-done:
		default:
			d.pushRun(t, fmt.Sprintf("prof-%s-%d", name, i), n, row, concurrency)
			msgs += n
			continue
		}
		break
	}
	require.NoError(t, cpu.err)
	allocs, err := p.fetch(ctx, "allocs", name+"-allocs")
	require.NoError(t, err)
	heap, err := p.fetch(ctx, "heap?gc=1", name+"-heap")
	require.NoError(t, err)
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s, %s, %d messages in %d s\n\n", name, row, msgs, secs)
	for _, v := range []struct {
		title, file, base, idx, gran string
		cum                          bool
	}{
		{"CPU, flat", cpu.file, "", "", "lines", false},
		{"CPU, cumulative", cpu.file, "", "", "functions", true},
		{"allocated bytes, flat", allocs, allocsBase, "alloc_space", "lines", false},
		{"allocated objects, flat", allocs, allocsBase, "alloc_objects", "lines", false},
		{"allocated bytes, cumulative", allocs, allocsBase, "alloc_space", "functions", true},
		{"heap in use after the load", heap, "", "inuse_space", "lines", false},
	} {
		fmt.Fprintf(&b, "== %s\n%s\n", v.title, pprofTop(t, d.bin, v.file, v.base, v.idx, v.gran, v.cum, 25))
	}
	require.NoError(t, os.WriteFile(prefix+"-top.txt", []byte(b.String()), 0o644))
	t.Logf("profiles of %s in %s-*.pprof; top entries in %s-top.txt", row, prefix, prefix)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, key string, def int) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", key)
	require.Positive(t, n, "%s", key)
	return n
}
