package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDaemonLoad is the load tool for the SMS path: it drives the running
// daemon's real HTTP endpoints and prints throughput, latency, CPU per
// message and RSS. It sends traffic to loopback only, in bounded loops.
//
//	SWITCHBOARD_LOAD=1 go test -tags goolm -run DaemonLoad -v ./cmd/switchboard
func TestDaemonLoad(t *testing.T) {
	if os.Getenv("SWITCHBOARD_LOAD") == "" {
		t.Skip("load tool: set SWITCHBOARD_LOAD=1 to run it")
	}
	d := startSMSDaemon(t, "warn")
	hsToken := d.hsToken(t)
	pid := d.proc.Process.Pid
	time.Sleep(3 * time.Second)
	t.Logf("RSS idle: %.1f MB", rssMB(t, pid))

	alice := "@alice:" + d.hs.ServerName
	for _, tc := range []struct{ perTxn, total int }{{1, 3000}, {50, 10000}} {
		base := len(d.fake.sent())
		sentAt := make([]time.Time, tc.total)
		cpu0 := cpuSeconds(t, pid)
		start := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					first := int(next.Add(int64(tc.perTxn))) - tc.perTxn
					if first >= tc.total {
						return
					}
					var events []map[string]any
					for i := first; i < first+tc.perTxn && i < tc.total; i++ {
						sentAt[i] = time.Now()
						events = append(events, map[string]any{
							"type": "m.room.message", "room_id": d.portal, "sender": alice,
							"event_id": fmt.Sprintf("$load%d-%d", tc.perTxn, i), "origin_server_ts": time.Now().UnixMilli(),
							"content": map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("load%d-%d", tc.perTxn, i)},
						})
					}
					body, _ := json.Marshal(map[string]any{"events": events})
					req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/_matrix/app/v1/transactions/load%d-%d", d.listen, tc.perTxn, first), bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+hsToken)
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("transaction: %s", resp.Status)
						return
					}
				}
			}()
		}
		wg.Wait()
		require.Eventually(t, func() bool { return len(d.fake.sent()) >= base+tc.total }, 5*time.Minute, 20*time.Millisecond)
		d.fake.mu.Lock()
		var last time.Time
		lat := make([]time.Duration, 0, tc.total)
		for i := 0; i < tc.total; i++ {
			at := d.fake.at[fmt.Sprintf("load%d-%d", tc.perTxn, i)]
			if at.After(last) {
				last = at
			}
			lat = append(lat, at.Sub(sentAt[i]))
		}
		d.fake.mu.Unlock()
		cpu := cpuSeconds(t, pid) - cpu0
		slices.Sort(lat)
		t.Logf("(a) Matrix→SMS, %d event(s)/transaction: %d msgs in %s = %.0f msg/s; transaction→Twilio POST p50 %s p99 %s; CPU %.3f ms/msg",
			tc.perTxn, tc.total, last.Sub(start).Round(time.Millisecond), float64(tc.total)/last.Sub(start).Seconds(),
			lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond), cpu*1000/float64(tc.total))
	}

	// (b) Signed inbound webhooks.
	const hooks = 2000
	incoming := "http://" + d.listen + "/sms/twilio/incoming"
	respLat := make([]time.Duration, hooks)
	sentAt := make([]time.Time, hooks)
	cpu0 := cpuSeconds(t, pid)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= hooks {
					return
				}
				form := url.Values{
					"AccountSid": {e2eSID}, "MessageSid": {fmt.Sprintf("SM%032d", 900000+i)},
					"From": {e2eContact}, "To": {e2ePool}, "Body": {"hook-" + strconv.Itoa(i)}, "NumMedia": {"0"},
				}
				req, _ := http.NewRequest(http.MethodPost, incoming, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Twilio-Signature", twilioSign(t, incoming, form))
				sentAt[i] = time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				respLat[i] = time.Since(sentAt[i])
				if resp.StatusCode != http.StatusOK {
					t.Errorf("webhook: %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	accepted := time.Since(start)
	// Wait for every message to reach the Matrix room, then read the
	// homeserver's timestamps of the ghost's events.
	arrived := map[string]int64{}
	require.Eventually(t, func() bool {
		from := ""
		for len(arrived) < hooks {
			var page struct {
				Chunk []roomEvent `json:"chunk"`
				End   string      `json:"end"`
			}
			path := "/_matrix/client/v3/rooms/" + url.PathEscape(d.portal) + "/messages?dir=b&limit=1000"
			if from != "" {
				path += "&from=" + url.QueryEscape(from)
			}
			d.hs.DoJSON(t, http.MethodGet, path, d.token, nil, &page)
			for _, ev := range page.Chunk {
				if b, _ := ev.Content["body"].(string); strings.HasPrefix(b, "hook-") {
					arrived[b] = ev.OriginTS
				}
			}
			if page.End == "" || len(page.Chunk) == 0 {
				break
			}
			from = page.End
		}
		return len(arrived) >= hooks
	}, 5*time.Minute, time.Second)
	cpu := cpuSeconds(t, pid) - cpu0
	toMatrix := make([]time.Duration, 0, hooks)
	for i := 0; i < hooks; i++ {
		toMatrix = append(toMatrix, time.UnixMilli(arrived["hook-"+strconv.Itoa(i)]).Sub(sentAt[i]))
	}
	slices.Sort(respLat)
	slices.Sort(toMatrix)
	t.Logf("(b) SMS→Matrix: %d signed webhooks accepted in %s = %.0f/s; response p50 %s p99 %s; webhook→Matrix event (homeserver timestamp, ms) p50 %s p99 %s; CPU %.3f ms/msg",
		hooks, accepted.Round(time.Millisecond), hooks/accepted.Seconds(),
		respLat[hooks/2].Round(10*time.Microsecond), respLat[hooks*99/100].Round(10*time.Microsecond),
		toMatrix[hooks/2].Round(time.Millisecond), toMatrix[hooks*99/100].Round(time.Millisecond), cpu*1000/hooks)
	t.Logf("RSS after load: %.1f MB", rssMB(t, pid))
}

func rssMB(t *testing.T, pid int) float64 {
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

// cpuSeconds is the process's user+system CPU time (clock ticks of 1/100 s).
func cpuSeconds(t *testing.T, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}
