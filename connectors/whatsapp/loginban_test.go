package whatsapp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// A ban is visible as a ban (issue 14): the relay account banned, for a
// while or logged out by WhatsApp with the code WhatsApp Web calls BANNED
// (406), makes /health say "banned"; a user's login ended that way tells
// the user it was a ban, not a plain logout.
func TestBanIsVisible(t *testing.T) {
	for _, tc := range []struct {
		name    string
		account string
		evt     any
		notice  string
		health  bridge.HealthState
		text    string
	}{
		{"relay temporarily banned", RelayAccount, &events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: time.Hour}, "", bridge.HealthBanned, "relay banned"},
		{"relay logged out as banned", RelayAccount, &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureUnknownLogout}, "", bridge.HealthBanned, "relay banned"},
		{"relay logged out", RelayAccount, &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureLoggedOut}, "", bridge.HealthLoggedOut, "relay logged out"},
		{"user logged out as banned", alice, &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureUnknownLogout}, "reports the account as banned", bridge.HealthOK, "no WhatsApp logins"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			own := aliceJID
			if tc.account == RelayAccount {
				own = relayJID
			}
			f := e.login(tc.account, own)
			f.dispatch(tc.evt)
			if tc.notice != "" {
				n, ok := e.matrix.waitNotice(tc.notice)
				require.True(t, ok, "user told")
				require.Equal(t, id.UserID(tc.account), n.user)
				requireNoNumbers(t, n.text, "notice")
			}
			h := e.wa.Health(e.ctx)
			require.Equal(t, tc.health, h.State, h.Message)
			require.Contains(t, h.Message, tc.text)
			if _, ok := tc.evt.(*events.LoggedOut); ok {
				require.Equal(t, []types.JID{own}, e.sessions.deletedJIDs(), "the session is deleted")
			}
			requireNoNumbers(t, h.Message, "health")
		})
	}
}
