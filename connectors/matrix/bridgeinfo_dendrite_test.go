package matrix_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// TestBridgeInfoFollowsLegs, on Dendrite: a portal's bridge-info state
// describes each network its conversation joins (a second network added
// gets its own pair of events, one that leaves has them emptied), never
// holds the contact's number, and a portal without recorded bridge info
// gets it from the start-time backfill exactly once.
func TestBridgeInfoFollowsLegs(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	e.conn.SetLegLister(e.router)
	alice := e.newUser(t, "alice")
	contact := bridge.Sender{ID: contactPhone, DisplayName: "+1 (555) 123-4567"}
	chat, err := e.conn.CreatePortal(ctx, matrix.PortalOptions{User: idOf(alice), Network: netLoop, Contact: contact, Direct: true})
	require.NoError(t, err)
	room := string(chat)
	alice.join(t, room)
	digits := strings.TrimPrefix(contactPhone, "+")
	conv, err := e.router.CreateConversation(ctx,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: chat},
		bridge.Leg{Network: netLoop, Chat: bridge.ChatID("chat-" + digits)})
	require.NoError(t, err)

	type info struct {
		typ, key string
		content  map[string]any
	}
	state := func() map[string]info {
		var evts []struct {
			Type     string         `json:"type"`
			StateKey string         `json:"state_key"`
			Content  map[string]any `json:"content"`
		}
		alice.do(t, http.MethodGet, "/rooms/"+url.PathEscape(room)+"/state", nil, &evts)
		out := map[string]info{}
		for _, s := range evts {
			if s.Type == "m.bridge" || s.Type == "uk.half-shot.bridge" {
				out[s.Type+" "+s.StateKey] = info{s.Type, s.StateKey, s.Content}
				data, _ := json.Marshal(s.Content)
				require.NotContains(t, s.StateKey+string(data), digits, "bridge info holds the number")
			}
		}
		return out
	}
	protocols := func(m map[string]info) map[string]int {
		out := map[string]int{}
		for _, i := range m {
			p, _ := i.content["protocol"].(map[string]any)
			id, _ := p["id"].(string)
			out[id]++
		}
		return out
	}
	waitFor(t, 15*time.Second, "bridge info for the loop network", func() bool {
		return protocols(state())[string(netLoop)] == 2
	})

	smsLeg := bridge.Leg{Network: bridge.NetworkSMS, Chat: bridge.ChatID("+" + digits + ">+14155550100")}
	require.NoError(t, e.router.AddLeg(ctx, conv, smsLeg))
	waitFor(t, 15*time.Second, "bridge info for SMS too", func() bool {
		p := protocols(state())
		return p[string(netLoop)] == 2 && p["sms"] == 2
	})

	require.NoError(t, e.router.RemoveLeg(ctx, smsLeg))
	waitFor(t, 15*time.Second, "SMS bridge info emptied", func() bool {
		s := state()
		p := protocols(s)
		return p[string(netLoop)] == 2 && p["sms"] == 0 && p[""] == 2 && len(s) == 4
	})

	// Backfill: a portal renamed since its bridge info was written, and
	// whose recorded bridge info is gone (as for portals made before it
	// existed), gets it written again with the current name.
	require.Equal(t, http.StatusOK, alice.do(t, http.MethodPut, "/rooms/"+url.PathEscape(room)+"/state/m.room.name/", map[string]any{"name": "Carol renamed"}, nil))
	_, err = e.db.Exec(ctx, `UPDATE sb_matrix_portal SET bridge_info='' WHERE room_id=$1`, room)
	require.NoError(t, err)
	e.conn.BackfillBridgeInfo(ctx)
	var stored string
	require.NoError(t, e.db.QueryRow(ctx, `SELECT bridge_info FROM sb_matrix_portal WHERE room_id=$1`, room).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, "v1:"), stored)
	renamed := 0
	for _, i := range state() {
		if ch, _ := i.content["channel"].(map[string]any); ch["displayname"] == "Carol renamed" {
			renamed++
		}
	}
	require.Equal(t, 2, renamed, "both events carry the new name")
}
