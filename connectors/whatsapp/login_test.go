package whatsapp

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
)

// loginReq is `login whatsapp args…` from user in !room:example.org, whose
// later steps are drawn on the fake Matrix side the way the Matrix front
// end draws them.
func (e *env) loginReq(user string, args ...string) *commands.Request {
	return &commands.Request{User: bridge.Address{Network: bridge.NetworkMatrix, ID: user}, Level: commands.LevelUser, Room: "!room:example.org",
		Name: "login", Args: append([]string{"whatsapp"}, args...), Reply: matrix.StepReplier(e.matrix, "!room:example.org")}
}

// The QR login sends each code as a PNG image to the room the command came
// from, redacts the code it replaces, and gives up cleanly at the timeout.
func TestQRLoginTimesOut(t *testing.T) {
	e := newEnv(t, withLoginTimeout(1500*time.Millisecond))
	f := newFakeClient(types.EmptyJID)
	e.sessions.next = []*fakeClient{f}

	answer := e.wa.LoginCommand(e.ctx, e.loginReq(alice))
	require.Contains(t, answer, "Scan the QR code")
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.qr != nil && f.connected }))
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@first"}
	require.True(t, e.matrix.waitFor(5*time.Second, func() bool { return len(e.matrix.images) == 1 }))
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@second"}
	require.True(t, e.matrix.waitFor(5*time.Second, func() bool { return len(e.matrix.images) == 2 && len(e.matrix.redacted) == 1 }))

	e.matrix.mu.Lock()
	imgs := append([]sentImage(nil), e.matrix.images...)
	first := e.matrix.redacted[0]
	e.matrix.mu.Unlock()
	for _, img := range imgs {
		require.True(t, pngMagic(img.data), "QR code is a PNG")
		require.Equal(t, id.RoomID("!room:example.org"), img.room, "sent where the command came from")
	}
	require.Equal(t, imgs[0].event, first, "the new code replaces the old one")

	n, ok := e.matrix.waitNotice("timed out")
	require.True(t, ok)
	require.Equal(t, id.RoomID("!room:example.org"), n.room)
	require.True(t, e.matrix.waitFor(5*time.Second, func() bool { return len(e.matrix.redacted) == 2 }), "the last code is redacted too")
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.disconnects > 0 }))
	require.Eventually(t, func() bool {
		e.wa.mu.Lock()
		defer e.wa.mu.Unlock()
		return len(e.wa.pending) == 0
	}, 5*time.Second, 10*time.Millisecond, "a new login may start")
	require.Equal(t, []string{"WhatsApp: not logged in (send `login whatsapp`)", "WhatsApp relay account: not available"}, e.wa.Whoami(e.ctx, alice))
}

// whatsmeow's own end of the QR codes (its channel says "timeout") and
// failures end the login with a clear message.
func TestQRLoginEnds(t *testing.T) {
	for _, tc := range []struct {
		item whatsmeow.QRChannelItem
		want string
	}{
		{whatsmeow.QRChannelTimeout, "timed out"},
		{whatsmeow.QRChannelClientOutdated, "outdated"},
		{whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventError, Error: errBoom}, "login failed"},
	} {
		t.Run(tc.item.Event, func(t *testing.T) {
			e := newEnv(t)
			f := newFakeClient(types.EmptyJID)
			e.sessions.next = []*fakeClient{f}
			require.Contains(t, e.wa.LoginCommand(e.ctx, e.loginReq(alice)), "Scan the QR code")
			require.True(t, f.waitFor(5*time.Second, func() bool { return f.qr != nil }))
			f.qr <- tc.item
			_, ok := e.matrix.waitNotice(tc.want)
			require.True(t, ok)
		})
	}
}

// A successful QR login is recorded, survives a restart of the connector,
// and a second login is refused until logout.
func TestQRLoginSucceeds(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.Equal(t, "WhatsApp: logged in (connected)", e.wa.Whoami(e.ctx, alice)[0])
	require.Contains(t, e.wa.LoginCommand(e.ctx, e.loginReq(alice)), "already logged in")
	require.Equal(t, bridge.HealthOK, e.wa.Health(e.ctx).State)

	var enc string
	require.NoError(t, e.db.QueryRow(e.ctx, `SELECT jid_enc FROM sb_whatsapp_login WHERE account=$1`, alice).Scan(&enc))
	requireNoNumbers(t, enc, "stored login")

	// Restart: the stored login is loaded and connected again.
	require.NoError(t, e.wa.Stop(e.ctx))
	f.connected = false
	connects := f.connects
	require.NoError(t, e.wa.Start(e.ctx))
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.connects > connects && f.connected }))
}

// A failing connection is retried with backoff.
func TestReconnectWithBackoff(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	require.NoError(t, e.wa.Stop(e.ctx))
	f.connected = false
	f.connectErrs = []error{errBoom, errBoom, errBoom}
	connects := f.connects
	require.NoError(t, e.wa.Start(e.ctx))
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.connects == connects+4 && f.connected }))
	require.Contains(t, e.logs.String(), "WhatsApp connection failed; retrying")
}

// A stored login whose session is gone is deleted and its user told.
func TestStoredLoginWithoutSession(t *testing.T) {
	e := newEnv(t)
	e.login(alice, aliceJID)
	require.NoError(t, e.wa.Stop(e.ctx))
	e.sessions.mu.Lock()
	delete(e.sessions.stored, aliceJID)
	e.sessions.mu.Unlock()
	require.NoError(t, e.wa.Start(e.ctx))
	n, ok := e.matrix.waitNotice("no longer valid")
	require.True(t, ok)
	require.Equal(t, id.UserID(alice), n.user)
	require.Nil(t, e.wa.loginOf(alice))
}

// The pairing-code login answers with the code and completes like a QR
// login; the number is never echoed.
func TestPairingCodeLogin(t *testing.T) {
	e := newEnv(t)
	f := newFakeClient(types.EmptyJID)
	f.initialCode, f.pairCode = "2@first", "ABCD-EFGH"
	e.sessions.next = []*fakeClient{f}
	answer := e.wa.LoginCommand(e.ctx, e.loginReq(alice, aliceNumber))
	require.Contains(t, answer, "Your WhatsApp pairing code is ABCD-EFGH")
	requireNoNumbers(t, answer, "answer")
	require.Equal(t, []string{aliceNumber}, f.pairedWith)
	f.dispatch(&events.PairSuccess{ID: aliceJID})
	f.qr <- whatsmeow.QRChannelSuccess
	_, ok := e.matrix.waitNotice("now logged in")
	require.True(t, ok)
	require.Empty(t, e.matrix.images, "no QR images for a pairing-code login")
	require.NotNil(t, e.wa.loginOf(alice))
}

// Only admins log in the relay account.
func TestRelayLoginIsAdminOnly(t *testing.T) {
	e := newEnv(t)
	require.Contains(t, e.wa.LoginCommand(e.ctx, e.loginReq(bob, "relay")), "only available to bridge admins")
	e.login(RelayAccount, relayJID)
	require.Equal(t, "WhatsApp relay account: available for contacts you reach without your own login", e.wa.Whoami(e.ctx, bob)[1])
}

// Logging out removes the linked device on WhatsApp and deletes the
// session, also when WhatsApp cannot be reached.
func TestLogout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		logoutErr error
		want      string
	}{{"reachable", nil, "session was deleted"}, {"unreachable", errBoom, "Linked devices"}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			require.Equal(t, "You are not logged in to WhatsApp.", e.wa.LogoutCommand(e.ctx, e.loginReq(alice)))
			f := e.login(alice, aliceJID)
			require.True(t, f.dispatch(message(contactJID, contactJID, "M1", text("hi"))))
			f.logoutErr = tc.logoutErr
			answer := e.wa.LogoutCommand(e.ctx, e.loginReq(alice))
			require.Contains(t, answer, tc.want)
			require.Equal(t, 1, f.logouts)
			require.Equal(t, []types.JID{aliceJID}, e.sessions.deletedJIDs())
			var n int
			require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_login`).Scan(&n))
			require.Zero(t, n)
			require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_chat`).Scan(&n))
			require.Zero(t, n, "the account's chats go too")
			require.Nil(t, e.wa.loginOf(alice))
		})
	}
}

// An admin logs the relay account out with `logout whatsapp relay`; a
// user cannot.
func TestLogoutRelay(t *testing.T) {
	e := newEnv(t)
	f := e.login(RelayAccount, relayJID)
	require.Contains(t, e.wa.LogoutCommand(e.ctx, e.loginReq(alice, "relay")), "Only bridge admins")
	require.NotNil(t, e.wa.loginOf(RelayAccount))
	req := e.loginReq(admin, "relay")
	req.Level = commands.LevelAdmin
	require.Contains(t, e.wa.LogoutCommand(e.ctx, req), "session was deleted")
	require.Equal(t, 1, f.logouts)
	require.Equal(t, []types.JID{relayJID}, e.sessions.deletedJIDs())
	require.Nil(t, e.wa.loginOf(RelayAccount))
}

// WhatsApp ending a login, banning or refusing an outdated client: the
// user is told, /health shows it, and the session is deleted only when
// WhatsApp logged the device out.
func TestLoginStateEvents(t *testing.T) {
	for _, tc := range []struct {
		name        string
		account     string
		evt         any
		notice      string
		health      bridge.HealthState
		healthText  string
		deleted     bool
		whoamiState string
	}{
		{"logged out", alice, &events.LoggedOut{Reason: events.ConnectFailureLoggedOut}, "logged this bridge out", bridge.HealthOK, "no WhatsApp logins", true, ""},
		{"relay logged out", RelayAccount, &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureLoggedOut}, "", bridge.HealthLoggedOut, "relay logged out", true, ""},
		{"banned", alice, &events.TemporaryBan{Code: events.TempBanBlockedByUsers, Expire: time.Hour}, "temporarily banned", bridge.HealthDegraded, "1 banned", false, "banned"},
		{"outdated", alice, &events.ClientOutdated{}, "outdated", bridge.HealthDegraded, "update switchboard", false, "outdated"},
		{"replaced", alice, &events.StreamReplaced{}, "took over", bridge.HealthDegraded, "1 replaced", false, "replaced"},
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
			require.Equal(t, tc.health, h.State)
			require.Contains(t, h.Message, tc.healthText)
			if tc.deleted {
				require.Equal(t, []types.JID{own}, e.sessions.deletedJIDs())
				var n int
				require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_login`).Scan(&n))
				require.Zero(t, n)
			} else {
				require.Empty(t, e.sessions.deletedJIDs())
				require.Contains(t, e.wa.Whoami(e.ctx, id.UserID(tc.account))[0], tc.whoamiState)
			}
			requireNoNumbers(t, e.logs.String(), "logs")
			require.False(t, strings.Contains(h.Message, digitsOf(aliceNumber)))
		})
	}
}

// After a temporary ban expires, or a connect failure, the login connects
// again; the relay account's troubles go to the admin room.
func TestReconnectAfterBanAndFailure(t *testing.T) {
	e := newEnv(t)
	e.wa.adminRoom = "!admins:example.org"
	f := e.login(RelayAccount, relayJID)
	f.Disconnect()
	connects := f.connects
	f.dispatch(&events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: 20 * time.Millisecond})
	n, ok := e.matrix.waitNotice("temporarily banned")
	require.True(t, ok)
	require.Equal(t, id.RoomID("!admins:example.org"), n.room)
	require.True(t, strings.HasPrefix(n.text, "WhatsApp relay account: "))
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.connects > connects && f.connected }))

	f.Disconnect()
	connects = f.connects
	f.dispatch(&events.ConnectFailure{Reason: events.ConnectFailureServiceUnavailable})
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.connects > connects && f.connected }))
	f.dispatch(&events.Connected{})
	require.Equal(t, bridge.HealthOK, e.wa.Health(e.ctx).State)
}

// `logout whatsapp` cancels a login in progress, and says so.
func TestLogoutCancelsPendingLogin(t *testing.T) {
	e := newEnv(t)
	f := newFakeClient(types.EmptyJID)
	e.sessions.next = []*fakeClient{f}
	require.Contains(t, e.wa.LoginCommand(e.ctx, e.loginReq(alice)), "Scan the QR code")
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.qr != nil }))
	require.Equal(t, "Cancelled the WhatsApp login in progress.", e.wa.LogoutCommand(e.ctx, e.loginReq(alice)))
	_, ok := e.matrix.waitNotice("login was cancelled")
	require.True(t, ok)
	require.True(t, f.waitFor(5*time.Second, func() bool { return f.disconnects > 0 }))
}
