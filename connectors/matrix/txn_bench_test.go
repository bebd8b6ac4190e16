package matrix_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// BenchmarkTransaction pushes appservice transactions of plain text
// messages straight into the connector's handler, one at a time as a
// homeserver does, on each database. One op is one transaction
// acknowledged (so allocs/op is per transaction); msgs/s counts the
// messages acknowledged and delivered to the loopback leg, which the run
// waits for before it stops the clock. portals spreads the messages over
// that many portal rooms, round robin.
//
// The homeserver is a stub (the connector's own work, not Dendrite's, is
// measured); the load tool measures the whole path.
func BenchmarkTransaction(b *testing.B) {
	for _, backend := range dbtest.Backends() {
		for _, tc := range []struct{ events, portals int }{{1, 1}, {50, 1}, {1, 100}, {50, 100}} {
			b.Run(fmt.Sprintf("%s/events=%d/portals=%d", backend.Name, tc.events, tc.portals), func(b *testing.B) {
				benchTransactions(b, backend.Options(b), tc.events, tc.portals)
			})
		}
	}
}

func benchTransactions(b *testing.B, dbo database.Options, events, portals int) {
	// The daemon's default log level, not the tests' trace level.
	level := zerolog.GlobalLevel()
	zerolog.SetGlobalLevel(zerolog.InfoLevel)
	b.Cleanup(func() { zerolog.SetGlobalLevel(level) })
	cfg := testConfig(b)
	hs := newStubHomeserver(b, cfg.BotUserID().String())
	cfg.Homeserver.Address = hs.URL
	e := startBridgeDB(b, cfg, dbo, nil)
	waitFor(b, 10*time.Second, "connector healthy", func() bool {
		return e.conn.Health(context.Background()).State == bridge.HealthOK
	})
	// Portals as the bot creates them: the stub homeserver names every
	// created room alike, so rooms are added by hand after the first.
	rooms := make([]string, portals)
	for i := range rooms {
		rooms[i] = e.benchPortal(b, i)
	}
	h := e.conn.AppserviceHandler()
	token := "Bearer " + cfg.Appservice.HSToken
	ts := time.Now().UnixMilli()
	// Bodies are built before the clock starts: the homeserver's work.
	build := func(txn int) []byte {
		var buf bytes.Buffer
		buf.WriteString(`{"events":[`)
		for j := range events {
			if j > 0 {
				buf.WriteByte(',')
			}
			n := txn*events + j
			fmt.Fprintf(&buf, `{"event_id":"$bench-%d","room_id":%q,"sender":"@alice:localhost","type":"m.room.message","origin_server_ts":%d,"content":{"msgtype":"m.text","body":"bench message %d"}}`,
				n, rooms[n%portals], ts+int64(n), n)
		}
		buf.WriteString(`]}`)
		return buf.Bytes()
	}
	put := func(txn int, body []byte) {
		req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/bench-"+strconv.Itoa(txn), bytes.NewReader(body))
		req.Header.Set("Authorization", token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("transaction %d: status %d: %s", txn, rec.Code, rec.Body.String())
		}
	}
	// Warm up: the first transaction opens connections and caches.
	put(-1, []byte(`{"events":[]}`))
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = build(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	begin := time.Now()
	txn := 0
	for ; txn < b.N; txn++ {
		put(txn, bodies[txn])
	}
	sent := e.lb.WaitSent(txn*events, time.Minute)
	elapsed := time.Since(begin)
	b.StopTimer()
	require.Len(b, sent, txn*events)
	b.ReportMetric(float64(txn*events)/elapsed.Seconds(), "msgs/s")
}

// benchPortal makes room i a portal owned by @alice:localhost in a
// conversation with the loopback chat "chat-<i+1>".
func (e *env) benchPortal(t testing.TB, i int) string {
	t.Helper()
	ctx := context.Background()
	if i == 0 {
		chat := e.loopPortal(t, "@alice:localhost", bridge.Sender{ID: "contact-0", DisplayName: "Contact"})
		return chat
	}
	room := fmt.Sprintf("!portal%d:localhost", i)
	_, err := e.db.Exec(ctx, `INSERT INTO sb_matrix_portal (room_id, owner, is_direct, encrypted, created_at) VALUES ($1, $2, true, false, 0)`, room, "@alice:localhost")
	require.NoError(t, err)
	_, err = e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(room)},
		bridge.Leg{Network: netLoop, Chat: bridge.ChatID(fmt.Sprintf("chat-%d", i+1))})
	require.NoError(t, err)
	return room
}
