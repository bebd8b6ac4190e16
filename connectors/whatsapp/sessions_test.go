package whatsapp

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waAdv"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

// whatsmeow's session store runs its own migrations (whatsmeow_version)
// in the bridge's database, next to the connector's, on both dialects.
func TestSQLSessions(t *testing.T) {
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			logs := &testenv.SyncBuffer{}
			log := zerolog.New(logs)
			db, err := database.Open(ctx, be.Options(t), log)
			require.NoError(t, err)
			defer db.Close()
			s, err := NewSQLSessions(db, secret, log)
			require.NoError(t, err)
			require.NoError(t, s.Upgrade(ctx))
			require.NoError(t, s.Upgrade(ctx), "idempotent")
			var v int
			require.NoError(t, db.QueryRow(ctx, `SELECT version FROM whatsmeow_version`).Scan(&v))
			require.Positive(t, v)

			cli, err := s.New(ctx)
			require.NoError(t, err)
			wc, ok := cli.(*whatsmeow.Client)
			require.True(t, ok)
			require.True(t, wc.SynchronousAck, "acknowledge only after the router accepted")
			require.False(t, wc.EnableDecryptedEventBuffer, "no plaintext buffered in the database")
			require.True(t, wc.ManualHistorySyncDownload, "no history downloaded")
			require.False(t, wc.InitialAutoReconnect, "a login fails at once when WhatsApp cannot be reached")

			_, err = s.Load(ctx, aliceJID)
			require.ErrorIs(t, err, ErrNoSession)
			require.NoError(t, s.Delete(ctx, aliceJID), "deleting nothing is fine")

			dev := s.container.NewDevice()
			dev.ID = &aliceJID
			dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{1}, AccountSignature: make([]byte, 64), AccountSignatureKey: make([]byte, 32), DeviceSignature: make([]byte, 64)}
			require.NoError(t, s.sealed.PutDevice(ctx, dev))
			loaded, err := s.Load(ctx, aliceJID)
			require.NoError(t, err)
			lc := loaded.(*whatsmeow.Client)
			require.Equal(t, aliceJID, *lc.Store.ID)
			require.Same(t, noStore, lc.Store.Contacts, "the address book is not kept")
			require.Same(t, noStore, lc.Store.ChatSettings)
			changed, _, err := lc.Store.Contacts.PutPushName(ctx, contactJID, "Carol")
			require.NoError(t, err)
			require.False(t, changed)
			var n int
			require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM whatsmeow_contacts`).Scan(&n))
			require.Zero(t, n)
			require.NoError(t, s.Delete(ctx, aliceJID))
			_, err = s.Load(ctx, aliceJID)
			require.ErrorIs(t, err, ErrNoSession)
		})
	}
}

// whatsmeow's warnings and errors reach the log without numbers or JIDs.
func TestWhatsmeowLogsAreScrubbed(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	wl := waLogger(zerolog.New(logs)).Sub("Client")
	wl.Warnf("Failed to decrypt message from %s: %v", aliceJID, "bad mac")
	wl.Errorf("Error sending to %s (%s)", contactJID.String(), "+1 415 555 0177")
	wl.Infof("Got message from %s", contactJID)
	wl.Debugf("Sending %s", contactJID)
	out := logs.String()
	requireNoNumbers(t, out, "whatsmeow logs")
	require.Contains(t, out, "Failed to decrypt message from [redacted]: bad mac")
	require.Contains(t, out, `"module":"Client"`)
	require.NotContains(t, out, "Got message", "info and debug lines are dropped")
}
