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

// A store filled by an older version (whatsmeow straight on sqlstore,
// numbers in clear) is rewritten by Upgrade: the wrappers then find
// everything, a row stored since in the protected form wins over its
// legacy twin, and no contact number is left.
func TestUpgradeProtectsLegacyRows(t *testing.T) {
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			opts := be.Options(t)
			logs := &testenv.SyncBuffer{}
			log := zerolog.New(logs)
			db, err := database.Open(ctx, opts, log)
			require.NoError(t, err)
			defer db.Close()
			s, err := NewSQLSessions(db, secret, log)
			require.NoError(t, err)

			// The older version: sqlstore's stores as they are.
			require.NoError(t, s.container.Upgrade(ctx))
			legacy := s.container.NewDevice()
			id := aliceJID
			legacy.ID = &id
			legacy.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{1}, AccountSignature: make([]byte, 64), AccountSignatureKey: make([]byte, 32), DeviceSignature: make([]byte, 64)}
			require.NoError(t, s.container.PutDevice(ctx, legacy))
			fillStore(ctx, t, legacy)
			_, _, err = legacy.Contacts.PutPushName(ctx, contactJID, "Carol")
			require.NoError(t, err)
			require.Contains(t, string(dumpWhatsmeowTables(ctx, t, db)), digitsOf(contactNumber), "the legacy rows hold the number")

			// The new version stored a session since the number's legacy one.
			current, err := s.container.GetDevice(ctx, aliceJID)
			require.NoError(t, err)
			s.sealed.protect(current)
			require.NoError(t, current.Sessions.PutSession(ctx, addr(otherDev1), []byte("newer")))

			require.NoError(t, s.Upgrade(ctx))
			require.Contains(t, logs.String(), "Protected contact numbers stored by an older version")
			before := len(logs.String())
			require.NoError(t, s.Upgrade(ctx))
			require.NotContains(t, logs.String()[before:], "Protected contact numbers", "a second run finds nothing to do")
			requireNoNumbers(t, logs.String(), "logs")

			s2, err := NewSQLSessions(db, secret, log)
			require.NoError(t, err)
			cli, err := s2.Load(ctx, aliceJID)
			require.NoError(t, err)
			dev := cli.(*whatsmeow.Client).Store
			checkStore(ctx, t, dev)
			got, err := dev.Sessions.GetSession(ctx, addr(otherDev1))
			require.NoError(t, err)
			require.Equal(t, []byte("newer"), got)
			checkMigration(ctx, t, dev)
			var n int
			require.NoError(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM whatsmeow_contacts`).Scan(&n))
			require.Zero(t, n, "the address book is not kept")

			requireNoContactNumbersStored(ctx, t, db, opts)
		})
	}
}
