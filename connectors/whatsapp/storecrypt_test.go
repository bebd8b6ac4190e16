package whatsapp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
)

var (
	// contactLID is contactJID's LID; LIDs are stored in clear.
	contactLID = types.NewJID("203040506070809", types.HiddenUserServer)
	// oldGroupJID is a group made by an old client: its ID holds the
	// creator's number.
	oldGroupJID = types.NewJID("442071838750-1600000000", types.GroupServer)
)

// contactDigits are the contact numbers the store must not hold in clear.
var contactDigits = []string{digitsOf(contactNumber), digitsOf(otherNumber)}

// whatsmeow's sqlstore, driven through the wrappers, gets back what it put
// (from its caches and, after a restart, from the database), and the
// database holds no contact's number: not in any whatsmeow table, nor in
// SQLite's file and write-ahead log.
func TestStoreHoldsNoContactNumbers(t *testing.T) {
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			opts := be.Options(t)
			log := zerolog.New(&testenv.SyncBuffer{})
			db, err := database.Open(ctx, opts, log)
			require.NoError(t, err)
			defer db.Close()

			s, err := NewSQLSessions(db, secret, log)
			require.NoError(t, err)
			require.NoError(t, s.Upgrade(ctx))
			dev := pairDevice(ctx, t, s)
			fillStore(ctx, t, dev)
			checkStore(ctx, t, dev)

			// After a restart: new caches, everything read from the database.
			s2, err := NewSQLSessions(db, secret, log)
			require.NoError(t, err)
			cli, err := s2.Load(ctx, aliceJID)
			require.NoError(t, err)
			loaded := cli.(*whatsmeow.Client).Store
			requireProtected(t, loaded)
			checkStore(ctx, t, loaded)
			checkMigration(ctx, t, loaded)

			requireNoContactNumbersStored(ctx, t, db, opts)
		})
	}
}

// requireNoContactNumbersStored fails if a contact's number is in any
// value of whatsmeow's tables or, for SQLite, in the database's files
// (read again after closing db).
func requireNoContactNumbersStored(ctx context.Context, t *testing.T, db *dbutil.Database, opts database.Options) {
	t.Helper()
	for _, table := range []string{
		"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_identity_keys", "whatsmeow_sender_keys",
		"whatsmeow_lid_map", "whatsmeow_privacy_tokens", "whatsmeow_message_secrets",
	} {
		var n int
		require.NoError(t, db.QueryRow(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
		require.Positive(t, n, "%s has rows, so its check means something", table)
	}
	dump := dumpWhatsmeowTables(ctx, t, db)
	requireNoContactDigits(t, dump, "whatsmeow tables")
	require.NotContains(t, string(dump), digitsOf(aliceNumber), "the account's own number is sealed too")
	// The check sees clear text: the contact's LID is kept as it is.
	require.Contains(t, string(dump), contactLID.User)

	if opts.Type != database.TypeSQLite {
		return
	}
	var files []byte
	for _, suffix := range []string{"", "-wal"} {
		raw, err := os.ReadFile(opts.URI + suffix)
		if suffix != "" && os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		requireNoContactDigits(t, raw, "SQLite file s.db"+suffix)
		files = append(files, raw...)
	}
	require.Contains(t, string(files), contactLID.User, "the check sees clear text")
	require.NoError(t, db.Close())
	raw, err := os.ReadFile(opts.URI)
	require.NoError(t, err)
	requireNoContactDigits(t, raw, "SQLite file after close")
	require.NotContains(t, string(raw), digitsOf(aliceNumber))
}

// pairDevice saves a device the way pairing does (through the device's
// Container), which gives it protected stores before whatsmeow stores the
// account's own LID mapping and main device identity.
func pairDevice(ctx context.Context, t *testing.T, s *SQLSessions) *store.Device {
	t.Helper()
	cli, err := s.New(ctx)
	require.NoError(t, err)
	dev := cli.(*whatsmeow.Client).Store
	require.False(t, dev.Initialized)
	id := aliceJID
	dev.ID = &id
	dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte{1}, AccountSignature: make([]byte, 64), AccountSignatureKey: make([]byte, 32), DeviceSignature: make([]byte, 64)}
	require.NoError(t, dev.Save(ctx))
	require.True(t, dev.Initialized)
	requireProtected(t, dev)
	sessions := dev.Sessions
	require.NoError(t, dev.Save(ctx), "saving again")
	require.Same(t, sessions, dev.Sessions, "wrapped once")
	return dev
}

func requireProtected(t *testing.T, dev *store.Device) {
	t.Helper()
	require.IsType(t, &hashedIdentities{}, dev.Identities)
	require.IsType(t, &hashedSessions{}, dev.Sessions)
	require.IsType(t, &hashedSenderKeys{}, dev.SenderKeys)
	require.IsType(t, &sealedLIDs{}, dev.LIDs)
	require.IsType(t, &sealedPrivacyTokens{}, dev.PrivacyTokens)
	require.IsType(t, &sealedMsgSecrets{}, dev.MsgSecrets)
	require.IsType(t, &sealedContainer{}, dev.Container)
	require.Same(t, noStore, dev.Contacts)
	require.Same(t, noStore, dev.ChatSettings)
}

var (
	contactDev3  = types.NewADJID(contactJID.User, 0, 3)
	contactDev5  = types.NewADJID(contactJID.User, 0, 5)
	otherDev1    = types.NewADJID(otherJID.User, 0, 1)
	identityKey  = [32]byte{1, 2, 3}
	tokenTime    = time.Unix(1_700_000_000, 0)
	secretMsgID  = types.MessageID("3EB0C0FFEE")
	msgSecret    = []byte("0123456789abcdef0123456789abcdef")
	session3     = []byte("session with device 3")
	session5     = []byte("session with device 5")
	otherSession = []byte("session with the other contact")
	senderKey    = []byte("sender key")
)

func addr(jid types.JID) string { return jid.SignalAddress().String() }

func fillStore(ctx context.Context, t *testing.T, dev *store.Device) {
	t.Helper()
	require.NoError(t, dev.Sessions.PutSession(ctx, addr(contactDev3), session3))
	require.NoError(t, dev.Sessions.PutManySessions(ctx, map[string][]byte{addr(contactDev5): session5, addr(otherDev1): otherSession}))
	require.NoError(t, dev.Identities.PutIdentity(ctx, addr(contactDev3), identityKey))
	require.NoError(t, dev.Identities.PutIdentity(ctx, addr(otherDev1), identityKey))
	require.NoError(t, dev.SenderKeys.PutSenderKey(ctx, oldGroupJID.String(), addr(contactDev3), senderKey))
	require.NoError(t, dev.LIDs.PutLIDMapping(ctx, contactLID, contactJID))
	require.NoError(t, dev.LIDs.PutManyLIDMappings(ctx, []store.LIDMapping{{LID: types.NewJID("304050607080901", types.HiddenUserServer), PN: otherJID}}))
	require.NoError(t, dev.PrivacyTokens.PutPrivacyTokens(ctx, store.PrivacyToken{User: contactJID, Token: []byte("token"), Timestamp: tokenTime}))
	require.NoError(t, dev.MsgSecrets.PutMessageSecret(ctx, contactJID, contactDev3, secretMsgID, msgSecret))
	require.NoError(t, dev.MsgSecrets.PutMessageSecrets(ctx, []store.MessageSecretInsert{{Chat: oldGroupJID, Sender: otherDev1, ID: "3EB0BEEF", Secret: msgSecret}}))
}

// checkStore reads back what fillStore put, under the same keys and, where
// whatsmeow's SQL joins the LID map, under the contact's LID.
func checkStore(ctx context.Context, t *testing.T, dev *store.Device) {
	t.Helper()
	got, err := dev.Sessions.GetSession(ctx, addr(contactDev3))
	require.NoError(t, err)
	require.Equal(t, session3, got)
	has, err := dev.Sessions.HasSession(ctx, addr(contactDev5))
	require.NoError(t, err)
	require.True(t, has)
	has, err = dev.Sessions.HasSession(ctx, addr(types.NewADJID(contactJID.User, 0, 9)))
	require.NoError(t, err)
	require.False(t, has)
	missing := addr(types.NewADJID(contactJID.User, 0, 9))
	many, err := dev.Sessions.GetManySessions(ctx, []string{addr(contactDev3), addr(contactDev5), missing})
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{addr(contactDev3): session3, addr(contactDev5): session5, missing: nil}, many)

	trusted, err := dev.Identities.IsTrustedIdentity(ctx, addr(contactDev3), identityKey)
	require.NoError(t, err)
	require.True(t, trusted)
	trusted, err = dev.Identities.IsTrustedIdentity(ctx, addr(contactDev3), [32]byte{9})
	require.NoError(t, err)
	require.False(t, trusted, "the stored key is found and compared")

	key, err := dev.SenderKeys.GetSenderKey(ctx, oldGroupJID.String(), addr(contactDev3))
	require.NoError(t, err)
	require.Equal(t, senderKey, key)

	lid, err := dev.LIDs.GetLIDForPN(ctx, contactJID)
	require.NoError(t, err)
	require.Equal(t, contactLID, lid)
	lidDev3 := contactLID
	lidDev3.Device = 3
	pn, err := dev.LIDs.GetPNForLID(ctx, lidDev3)
	require.NoError(t, err)
	require.Equal(t, contactDev3, pn, "the number comes back, with the device asked for")
	alt, err := dev.GetAltJID(ctx, contactLID)
	require.NoError(t, err)
	require.Equal(t, contactJID, alt)
	lids, err := dev.LIDs.GetManyLIDsForPNs(ctx, []types.JID{contactJID, otherJID, types.NewJID("14155550100", types.DefaultUserServer)})
	require.NoError(t, err)
	require.Equal(t, contactLID, lids[contactJID])
	require.Equal(t, "304050607080901", lids[otherJID].User)
	require.Len(t, lids, 2)

	for _, user := range []types.JID{contactJID, contactDev3, contactLID} {
		tok, err := dev.PrivacyTokens.GetPrivacyToken(ctx, user)
		require.NoError(t, err)
		require.NotNil(t, tok, "token found under %s", user.Server)
		require.Equal(t, []byte("token"), tok.Token)
		require.Equal(t, user.ToNonAD(), tok.User)
		require.Equal(t, tokenTime.Unix(), tok.Timestamp.Unix())
	}
	tok, err := dev.PrivacyTokens.GetPrivacyToken(ctx, otherJID)
	require.NoError(t, err)
	require.Nil(t, tok)

	for _, tc := range []struct{ chat, sender types.JID }{
		{contactJID, contactDev3},
		{contactLID, contactLID}, // whatsmeow's SQL finds the number through the LID map
	} {
		sec, realSender, err := dev.MsgSecrets.GetMessageSecret(ctx, tc.chat, tc.sender, secretMsgID)
		require.NoError(t, err)
		require.Equal(t, msgSecret, sec)
		require.Equal(t, contactJID, realSender, "the stored sender comes back decrypted")
	}
	sec, realSender, err := dev.MsgSecrets.GetMessageSecret(ctx, oldGroupJID, otherJID, "3EB0BEEF")
	require.NoError(t, err)
	require.Equal(t, msgSecret, sec)
	require.Equal(t, otherJID, realSender)
	sec, _, err = dev.MsgSecrets.GetMessageSecret(ctx, contactJID, contactJID, "unknown")
	require.NoError(t, err)
	require.Nil(t, sec)
}

// checkMigration runs the operations that match by prefix or rename rows
// in SQL: MigratePNToLID and the delete-all-of-a-number calls.
func checkMigration(ctx context.Context, t *testing.T, dev *store.Device) {
	t.Helper()
	require.NoError(t, dev.Sessions.MigratePNToLID(ctx, contactJID, contactLID))
	lidDev3 := contactLID
	lidDev3.Device = 3
	got, err := dev.Sessions.GetSession(ctx, addr(lidDev3))
	require.NoError(t, err)
	require.Equal(t, session3, got, "the session moved to the LID")
	has, err := dev.Sessions.HasSession(ctx, addr(contactDev3))
	require.NoError(t, err)
	require.False(t, has, "and left the number")
	trusted, err := dev.Identities.IsTrustedIdentity(ctx, addr(lidDev3), [32]byte{9})
	require.NoError(t, err)
	require.False(t, trusted, "the identity key moved to the LID")
	key, err := dev.SenderKeys.GetSenderKey(ctx, oldGroupJID.String(), addr(lidDev3))
	require.NoError(t, err)
	require.Equal(t, senderKey, key, "the sender key moved to the LID")

	has, err = dev.Sessions.HasSession(ctx, addr(otherDev1))
	require.NoError(t, err)
	require.True(t, has)
	require.NoError(t, dev.Sessions.DeleteAllSessions(ctx, otherJID.User))
	require.NoError(t, dev.Identities.DeleteAllIdentities(ctx, otherJID.User))
	has, err = dev.Sessions.HasSession(ctx, addr(otherDev1))
	require.NoError(t, err)
	require.False(t, has, "deleted by number prefix")
	trusted, err = dev.Identities.IsTrustedIdentity(ctx, addr(otherDev1), [32]byte{9})
	require.NoError(t, err)
	require.True(t, trusted, "no identity left: an unknown key is trusted")

	require.NoError(t, dev.Identities.PutIdentity(ctx, addr(otherDev1), identityKey))
	require.NoError(t, dev.Sessions.PutSession(ctx, addr(otherDev1), otherSession))
	require.NoError(t, dev.Identities.DeleteIdentity(ctx, addr(otherDev1)))
	require.NoError(t, dev.Sessions.DeleteSession(ctx, addr(otherDev1)))
	has, err = dev.Sessions.HasSession(ctx, addr(otherDev1))
	require.NoError(t, err)
	require.False(t, has)
	trusted, err = dev.Identities.IsTrustedIdentity(ctx, addr(otherDev1), [32]byte{9})
	require.NoError(t, err)
	require.True(t, trusted)
	// Leave rows for the number-free check of every table.
	require.NoError(t, dev.Sessions.PutSession(ctx, addr(otherDev1), otherSession))
	require.NoError(t, dev.Identities.PutIdentity(ctx, addr(otherDev1), identityKey))
}

func whatsmeowTables(ctx context.Context, t testing.TB, db *dbutil.Database) []string {
	t.Helper()
	tables := tablesLike(ctx, t, db, "whatsmeow%")
	require.Contains(t, tables, "whatsmeow_lid_map")
	return tables
}

// tablesLike names the database's tables matching a LIKE pattern.
func tablesLike(ctx context.Context, t testing.TB, db *dbutil.Database, pattern string) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type='table' AND name LIKE $1 ORDER BY name`
	if db.Dialect == dbutil.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema=current_schema() AND table_name LIKE $1 ORDER BY table_name`
	}
	rows, err := db.Query(ctx, q, pattern)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	return tables
}

// dumpWhatsmeowTables is every value of every whatsmeow table, as bytes
// (text and bytea alike).
func dumpWhatsmeowTables(ctx context.Context, t *testing.T, db *dbutil.Database) []byte {
	t.Helper()
	return dumpTables(ctx, t, db, whatsmeowTables(ctx, t, db))
}

// dumpTables is every value of the tables, as bytes (text and bytea
// alike).
func dumpTables(ctx context.Context, t testing.TB, db *dbutil.Database, tables []string) []byte {
	t.Helper()
	var dump bytes.Buffer
	for _, table := range tables {
		rows, err := db.Query(ctx, "SELECT * FROM "+table)
		require.NoError(t, err)
		cols, err := rows.Columns()
		require.NoError(t, err)
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for _, v := range vals {
				switch v := v.(type) {
				case []byte:
					dump.Write(v)
				case string:
					dump.WriteString(v)
				default:
					fmt.Fprint(&dump, v)
				}
				dump.WriteByte('|')
			}
			dump.WriteByte('\n')
		}
		require.NoError(t, rows.Err())
	}
	return dump.Bytes()
}

func requireNoContactDigits(t testing.TB, b []byte, what string) {
	t.Helper()
	for _, d := range contactDigits {
		require.False(t, bytes.Contains(b, []byte(d)), "%s holds a contact's number in clear", what)
	}
}
