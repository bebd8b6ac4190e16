package matrix

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/crypto/utils"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

func testSecrets(fill byte) *crossSigningSecrets {
	key := make([]byte, 32)
	for i := range key {
		key[i] = fill + byte(i)
	}
	return &crossSigningSecrets{
		Master: []byte("master-seed-0123456789abcdef0123"), SelfSigning: []byte("self-seed"), UserSigning: []byte("user-seed"),
		SSSSKeyID: "key-id", SSSSKey: key, SSSSMeta: []byte(`{"algorithm":"m.secret_storage.v1.aes-hmac-sha2"}`),
	}
}

// TestCrossSigningStored: the secrets are stored once (a second store
// keeps the first identity), sealed (neither the recovery key nor the raw
// key is in the row), open again with the same identity.secret and not
// with another (SQLite, and PostgreSQL when configured).
func TestCrossSigningStored(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		c, _ := leaseConnector(t, dbo, time.Hour)
		first := testSecrets(1)
		row, err := c.storeCrossSigning(ctx, "MASTER-1", first)
		require.NoError(t, err)
		again, err := c.storeCrossSigning(ctx, "MASTER-2", testSecrets(2))
		require.NoError(t, err)
		assert.Equal(t, "MASTER-1", again.MasterKey, "a stored identity is never replaced")
		assert.False(t, again.Published)

		recovery := first.RecoveryKey()
		for _, canary := range []string{recovery, base64.StdEncoding.EncodeToString(first.SSSSKey),
			base64.RawStdEncoding.EncodeToString(first.SSSSKey), base64.StdEncoding.EncodeToString(first.Master)} {
			assert.NotContains(t, row.Sealed, canary)
		}
		opened, err := c.openCrossSigning(row)
		require.NoError(t, err)
		assert.Equal(t, recovery, opened.RecoveryKey())
		assert.Equal(t, first.Master, opened.Master)
		assert.Equal(t, first.SSSSKey, utils.DecodeBase58RecoveryKey(recovery), "the recovery key encodes the secret-storage key")

		require.NoError(t, c.markCrossSigningPublished(ctx, "MASTER-1"))
		row, err = c.loadCrossSigning(ctx)
		require.NoError(t, err)
		assert.True(t, row.Published)

		secret := c.cfg.Secret
		c.cfg.Secret = "another-identity-secret-0123456789abcdef"
		_, err = c.openCrossSigning(row)
		c.cfg.Secret = secret
		assert.ErrorIs(t, err, ErrDatabase, "another identity.secret cannot open the keys")
	})
}

// TestShowRecoveryKey: the key is shown only to an admin in their own
// encrypted direct chat with the bot, once; of two processes asked at the
// same time, one shows it.
func TestShowRecoveryKey(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		ctx := context.Background()
		c, _ := leaseConnector(t, dbo, time.Hour)
		const admin, other = id.UserID("@admin:localhost"), id.UserID("@bob:localhost")
		const dm, plainDM, othersDM, group = id.RoomID("!dm:localhost"), id.RoomID("!plain:localhost"), id.RoomID("!bobs:localhost"), id.RoomID("!group:localhost")
		require.NoError(t, c.saveManagementRoom(ctx, dm, admin))
		require.NoError(t, c.saveManagementRoom(ctx, plainDM, admin))
		require.NoError(t, c.saveManagementRoom(ctx, othersDM, other))
		c.crypted[dm], c.crypted[plainDM], c.crypted[othersDM], c.crypted[group] = true, false, true, true
		ask := func(c *Connector, room id.RoomID) (string, error) {
			return c.ShowRecoveryKey(ctx, &commands.Request{
				User: UserAddress(admin), Level: commands.LevelAdmin, Room: bridge.ChatID(room), Name: "recovery-key",
			})
		}

		_, err := ask(c, dm)
		assert.ErrorIs(t, err, commands.ErrNoRecoveryKey, "before the bot has an identity")
		secrets := testSecrets(7)
		_, err = c.storeCrossSigning(ctx, "MASTER", secrets)
		require.NoError(t, err)
		for _, tc := range []struct {
			room id.RoomID
			want error
		}{
			{group, commands.ErrNotDirectChat},
			{othersDM, commands.ErrNotDirectChat},
			{plainDM, commands.ErrNotEncrypted},
			{"", commands.ErrNotDirectChat},
		} {
			_, err = ask(c, tc.room)
			assert.ErrorIs(t, err, tc.want, string(tc.room))
		}

		// Two processes on one database, asked at once: one shows it.
		c2, _ := leaseConnector(t, dbo, time.Hour)
		c2.crypted[dm] = true
		var shown, refused atomic.Int32
		var wg sync.WaitGroup
		for _, conn := range []*Connector{c, c2, c, c2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key, err := ask(conn, dm)
				switch {
				case err == nil:
					assert.Equal(t, secrets.RecoveryKey(), key)
					shown.Add(1)
				case errors.Is(err, commands.ErrRecoveryKeyShown):
					refused.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int32(1), shown.Load(), "shown once")
		assert.Equal(t, int32(3), refused.Load())
		var shownTo string
		require.NoError(t, c.db.QueryRow(ctx, `SELECT shown_to FROM sb_matrix_cross_signing`).Scan(&shownTo))
		assert.Equal(t, string(admin), shownTo)
	})
}

// fakeSigner counts cross-signing attempts and fails while failing is set.
type fakeSigner struct {
	fakeCryptor
	calls     atomic.Int32
	failing   atomic.Bool
	passwords chan string
}

func (f *fakeSigner) crossSign(_ context.Context, password string) error {
	f.calls.Add(1)
	f.passwords <- password
	if f.failing.Load() {
		return ErrCrossSigningAuth
	}
	return nil
}

// TestCrossSignSchedule: an attempt runs once per machine start; a failed
// one waits (backoff) unless a password is given, which retries at once.
func TestCrossSignSchedule(t *testing.T) {
	c, _ := leaseConnector(t, dbtest.SQLite(t), time.Hour)
	f := &fakeSigner{passwords: make(chan string, 10)}
	c.crypto = f
	ctx := context.Background()
	c.cs.started.Store(true)
	c.cs.startedAt = time.Now()

	f.failing.Store(true)
	c.maybeCrossSign(ctx)
	c.maybeCrossSign(ctx)
	assert.Equal(t, int32(1), f.calls.Load(), "a failed attempt waits before the next")
	assert.Equal(t, "", <-f.passwords)

	f.failing.Store(false)
	c.SetCrossSigningPassword("bot-password")
	c.maybeCrossSign(ctx)
	assert.Equal(t, int32(2), f.calls.Load(), "a new password retries at once")
	assert.Equal(t, "bot-password", <-f.passwords)
	c.maybeCrossSign(ctx)
	assert.Equal(t, int32(2), f.calls.Load(), "done for this machine")

	c.cs.startedAt = c.cs.startedAt.Add(time.Second) // the machine restarted
	c.maybeCrossSign(ctx)
	assert.Equal(t, int32(3), f.calls.Load(), "a restarted machine is checked again")
	c.cs.started.Store(false)
	c.cs.startedAt = c.cs.startedAt.Add(time.Second)
	c.maybeCrossSign(ctx)
	assert.Equal(t, int32(3), f.calls.Load(), "nothing while the machine does not run")
}
