package matrix

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// fakeCryptor stands for the Olm machine: it records starts and stops.
type fakeCryptor struct {
	mu      sync.Mutex
	running bool
	starts  int
}

func (f *fakeCryptor) start(context.Context, func(id.RoomID, id.SessionID)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = true
	f.starts++
	return nil
}

func (f *fakeCryptor) stop() {
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
}

func (f *fakeCryptor) isRunning() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

func (f *fakeCryptor) decrypt(context.Context, *event.Event) (*event.Event, error) {
	return nil, errNoSession
}

func (f *fakeCryptor) hasSession(context.Context, id.RoomID, id.SessionID) (bool, error) {
	return false, nil
}

func (f *fakeCryptor) requestKey(context.Context, id.RoomID, id.SenderKey, id.SessionID, id.UserID, id.DeviceID) error {
	return nil
}

func (f *fakeCryptor) encrypt(context.Context, id.RoomID, event.Type, any) (*event.EncryptedEventContent, error) {
	return nil, ErrEncryptionNotReady
}

// leaseConnector is a connector on db ("a process") whose Olm machine is a
// fakeCryptor, with its migrations run and its background context made, as
// Start does, but without a homeserver.
func leaseConnector(t *testing.T, dbo database.Options, lease time.Duration) (*Connector, *fakeCryptor) {
	t.Helper()
	ctx := context.Background()
	cfg := config.Default()
	cfg.Homeserver.Address = "http://127.0.0.1:1"
	cfg.Homeserver.Domain = "localhost"
	cfg.Appservice.ASToken = "as-token-0123456789abcdef0123456789abcdef"
	cfg.Appservice.HSToken = "hs-token-0123456789abcdef0123456789abcdef"
	cfg.Identity.Secret = "identity-secret-0123456789abcdef0123456789"
	cfg.Encryption.Allow = false
	log := zerolog.Nop()
	raw, err := database.Open(ctx, dbo, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })
	c, err := New(ConnectorConfig(cfg), raw, log)
	require.NoError(t, err)
	fake := &fakeCryptor{}
	c.crypto = fake
	c.cs.leaseDuration = lease
	c.cs.scanInterval = time.Hour
	c.db, err = database.Upgrade(ctx, raw, migrations.Matrix, log)
	require.NoError(t, err)
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	c.mu.Lock()
	c.running = true
	c.health = bridge.Health{State: bridge.HealthOK}
	c.mu.Unlock()
	return c, fake
}

// kill ends a connector's background work without releasing anything, as
// kill -9 would.
func kill(c *Connector) {
	c.bgCancel()
	c.bg.Wait()
}

// TestCryptoLease: of two processes on one database, one owns the bot
// device (its machine runs); the other leaves encryption to it, says so in
// Health and is ready for events. When the owner dies, the other takes
// over once the lease expires; the old owner, back, stays off the device.
// A process that stops releases the lease, so the other takes over at once.
func TestCryptoLease(t *testing.T) {
	for _, be := range dbtest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			dbo := be.Options(t)
			const lease = 600 * time.Millisecond
			ctx := context.Background()
			a, fa := leaseConnector(t, dbo, lease)
			b, fb := leaseConnector(t, dbo, lease)
			t.Cleanup(func() { kill(a); kill(b) })

			// Before the lease is known, a process with encryption on is
			// not ready for events.
			require.ErrorIs(t, a.readyForEvents(), ErrEncryptionNotReady)
			assert.Equal(t, bridge.HealthDegraded, a.Health(ctx).State)

			require.NoError(t, a.startCrypto(ctx))
			require.NoError(t, b.startCrypto(ctx))
			assert.True(t, fa.isRunning(), "the first process owns the device")
			assert.False(t, fb.isRunning(), "the second leaves it alone")
			assert.NoError(t, a.readyForEvents())
			assert.NoError(t, b.readyForEvents(), "encrypted events are the owner's business")
			assert.Equal(t, bridge.HealthOK, a.Health(ctx).State)
			hb := b.Health(ctx)
			assert.Equal(t, bridge.HealthDegraded, hb.State)
			assert.Contains(t, hb.Message, "another process")

			// The owner keeps its lease well past its duration.
			time.Sleep(2 * lease)
			assert.True(t, fa.isRunning())
			assert.False(t, fb.isRunning())

			// The owner dies: the other takes over after the expiry.
			kill(a)
			start := time.Now()
			require.Eventually(t, fb.isRunning, 3*lease, 20*time.Millisecond, "the survivor takes the device over")
			assert.GreaterOrEqual(t, time.Since(start), lease/3, "not before the lease could expire")
			assert.Equal(t, bridge.HealthOK, b.Health(ctx).State)

			// The old owner comes back (a pause, not a death): it finds
			// the device taken and stops its machine.
			owned, err := a.takeLease(ctx)
			require.NoError(t, err)
			assert.False(t, owned)
			a.keepLease(ctx)
			assert.False(t, fa.isRunning(), "a process that lost the lease stops its machine")
			assert.NoError(t, a.readyForEvents())

			// A process that stops releases the lease: a third process
			// takes it at once.
			kill(b)
			b.stopCrypto()
			assert.False(t, fb.isRunning())
			c, fc := leaseConnector(t, dbo, time.Hour)
			t.Cleanup(func() { kill(c) })
			require.NoError(t, c.startCrypto(ctx))
			assert.True(t, fc.isRunning(), "released lease taken at once")
		})
	}
}

// TestReadyForEvents: transactions wait (ErrEncryptionNotReady) only while
// encryption is on, this process may own the device, and its machine is
// not started.
func TestReadyForEvents(t *testing.T) {
	c := &Connector{}
	assert.NoError(t, c.readyForEvents(), "encryption off")
	c.crypto = &fakeCryptor{}
	assert.ErrorIs(t, c.readyForEvents(), ErrEncryptionNotReady, "machine not started")
	c.cs.elsewhere.Store(true)
	assert.NoError(t, c.readyForEvents(), "another process owns the device")
	c.cs.elsewhere.Store(false)
	c.cs.started.Store(true)
	assert.NoError(t, c.readyForEvents(), "machine started")
}

var _ cryptor = (*fakeCryptor)(nil)

// TestHolderDead: a lease holder is judged gone only when it ran on this
// machine and its process no longer runs (or its PID is now this
// process's, from an earlier run); never for another machine's holder.
func TestHolderDead(t *testing.T) {
	self := "m_" + hostTag() + "_" + strconv.Itoa(os.Getpid()) + "_" + processToken + "_aaaa"
	gone := deadPID(t)
	for _, tc := range []struct {
		name   string
		holder string
		dead   bool
	}{
		{"another connector of this process", "m_" + hostTag() + "_" + strconv.Itoa(os.Getpid()) + "_" + processToken + "_bbbb", false},
		{"an earlier run with this PID", "m_" + hostTag() + "_" + strconv.Itoa(os.Getpid()) + "_000000000000_bbbb", true},
		{"a process of this machine that is gone", "m_" + hostTag() + "_" + strconv.Itoa(gone) + "_000000000000_bbbb", true},
		{"a process of this machine that runs", "m_" + hostTag() + "_" + strconv.Itoa(os.Getppid()) + "_000000000000_bbbb", false},
		{"another machine", "m_ffffffff_" + strconv.Itoa(gone) + "_000000000000_bbbb", false},
		{"an old holder ID", "m_0123456789abcdef01234567", false},
		{"garbage", "m_x_y_z_w", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.dead, holderDead(tc.holder, self))
		})
	}
}

// deadPID returns the ID of a process that has just ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// TestKilledOwnerTakenOverAtOnce: a bridge restarted after kill -9 takes
// the bot device from its dead predecessor at once instead of waiting for
// the lease to expire (it could not encrypt meanwhile).
func TestKilledOwnerTakenOverAtOnce(t *testing.T) {
	ctx := context.Background()
	dbo := dbtest.SQLite(t)
	c, fc := leaseConnector(t, dbo, time.Hour)
	t.Cleanup(func() { kill(c) })
	dead := "m_" + hostTag() + "_" + strconv.Itoa(deadPID(t)) + "_000000000000_bbbb"
	require.NoError(t, c.exec(ctx, `INSERT INTO sb_matrix_crypto_lease (name, holder, lease_until) VALUES ($1, $2, $3)`,
		cryptoLeaseName, dead, ms(time.Now().Add(time.Hour))))
	require.NoError(t, c.startCrypto(ctx))
	assert.True(t, fc.isRunning(), "the dead holder's lease is taken over at once")
}
