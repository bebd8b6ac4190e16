package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// ErrEncryptionUnavailable means the binary was built without end-to-end
// encryption (the goolm build tag) or encryption.allow is off.
var ErrEncryptionUnavailable = errors.New("matrix: end-to-end encryption is not available in this build")

// errNoSession means an encrypted event's room key has not arrived (yet).
var errNoSession = errors.New("matrix: the room key for this event has not arrived")

// cryptor is the bot's end-to-end encryption: an Olm account whose state
// lives in the shared database, kept current by a /sync loop as the bot
// (Dendrite sends no to-device events or device lists to appservices) or,
// with encryption.appservice, by the transactions' encryption traffic
// (MSC2409, MSC3202; astxn.go).
// Ghosts' messages in encrypted rooms are encrypted with the bot's Megolm
// session, as mautrix bridges do.
//
// Every method may be called at any time, also before start and after
// stop: they then fail with ErrEncryptionNotReady instead of touching a
// machine that does not exist.
type cryptor interface {
	// start logs the bot's device in (once; later starts reuse it),
	// uploads its keys and starts the sync loop. onSession is called (on
	// the sync loop; it must not block) when a room key arrives.
	start(ctx context.Context, onSession func(id.RoomID, id.SessionID)) error
	stop()
	// decrypt decrypts an m.room.encrypted event without waiting: an
	// event whose room key has not arrived fails with errNoSession.
	decrypt(ctx context.Context, evt *event.Event) (*event.Event, error)
	// hasSession reports whether the room key of a session is there (or
	// was withheld, which decrypt then reports).
	hasSession(ctx context.Context, room id.RoomID, session id.SessionID) (bool, error)
	// requestKey asks the sender's device (all their devices when device
	// is empty) for a room key.
	requestKey(ctx context.Context, room id.RoomID, senderKey id.SenderKey, session id.SessionID, user id.UserID, device id.DeviceID) error
	// encrypt encrypts content for a room, sharing the Megolm session with
	// the room's members' devices first when needed.
	encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error)
}

// cryptoState is the connector's view of end-to-end encryption: whether
// the Olm machine runs here, whether another process owns the bot device
// (see cryptolease.go), and the loop that keeps the lease and retries
// undecryptable events (see undecrypted.go). The flags are read without
// locks by transactions; mu serializes starting and stopping the machine.
type cryptoState struct {
	started   atomic.Bool // the Olm machine runs in this process
	elsewhere atomic.Bool // another process holds the bot device's lease
	lastErr   atomic.Pointer[string]

	mu                     sync.Mutex // held while starting or stopping the machine
	loopOnce               sync.Once
	wakeOnce               sync.Once
	wake                   chan struct{}
	leaseMu                sync.Mutex
	leaseTill              time.Time // when the lease this process holds runs out
	leaseKnown, leaseOwned bool
	holder                 string    // this process's lease holder ID
	startedAt              time.Time // when the machine last started (under mu)

	noticeMu sync.Mutex
	noticed  map[id.RoomID]time.Time // rooms told "too many pending" lately

	// xs schedules cross-signing the bot's device (crosssign.go).
	xs crossSignState

	// Timings; zero means the default. Tests set them before Start
	// (keyDeadline at any time).
	leaseDuration time.Duration
	scanInterval  time.Duration
	keyDeadline   atomic.Int64
}

// EncryptionAvailable reports whether this build can bridge encrypted rooms
// (built with the goolm tag and encryption.allow on).
func (c *Connector) EncryptionAvailable() bool { return c.crypto != nil }

// readyForEvents reports whether transactions may be handled now. It fails
// with ErrEncryptionNotReady (transient: the homeserver retries) while
// encryption is on, this process owns the bot device (or does not know yet
// whether it does) and the Olm machine has not started: events of
// encrypted rooms, and replies into them, need it. A process whose bot
// device is owned by another process is ready: it hands encrypted events
// to the owner through the database (see keepUndecrypted).
func (c *Connector) readyForEvents() error {
	if c.crypto == nil || c.cs.started.Load() || c.cs.elsewhere.Load() {
		return nil
	}
	return fmt.Errorf("%w: the bot device is not logged in yet", ErrEncryptionNotReady)
}

// startCrypto is called on every successful contact with the homeserver.
// It takes the bot device's lease and starts the Olm machine when the lease
// is this process's, and starts the background loop that keeps the lease
// and retries undecryptable events (once). It fails only when this process
// owns the device and the machine cannot start; the caller retries.
func (c *Connector) startCrypto(ctx context.Context) error {
	if c.crypto == nil {
		return nil
	}
	defer c.cs.loopOnce.Do(func() {
		c.bg.Add(1)
		go c.cryptoLoop()
	})
	owned, err := c.takeLease(ctx)
	if err != nil {
		c.setCryptoErr(err)
		return fmt.Errorf("start encryption: %w", err)
	}
	if !owned {
		c.stopMachine("another process owns the bot device")
		return nil
	}
	if err = c.startMachine(ctx); err != nil {
		return fmt.Errorf("start encryption: %w", err)
	}
	return nil
}

// startMachine starts the Olm machine if it is not running.
func (c *Connector) startMachine(ctx context.Context) error {
	c.cs.mu.Lock()
	defer c.cs.mu.Unlock()
	if c.cs.started.Load() {
		return nil
	}
	if err := c.crypto.start(ctx, c.sessionArrived); err != nil {
		c.setCryptoErr(err)
		return err
	}
	c.cs.startedAt = time.Now()
	c.cs.lastErr.Store(nil)
	c.cs.started.Store(true)
	c.wakeUndecrypted()
	return nil
}

// stopMachine stops the Olm machine if it runs.
func (c *Connector) stopMachine(why string) {
	c.cs.mu.Lock()
	defer c.cs.mu.Unlock()
	if !c.cs.started.Load() {
		return
	}
	c.cs.started.Store(false)
	c.crypto.stop()
	c.log.Info().Str("reason", why).Msg("Stopped end-to-end encryption in this process")
}

// stopCrypto stops the machine and gives up the bot device's lease, so
// another process can take over at once. Stop calls it after the
// background loop has ended.
func (c *Connector) stopCrypto() {
	if c.crypto == nil {
		return
	}
	c.stopMachine("stopping")
	// The loop has ended (Stop waited for it); a later Start starts it again.
	c.cs.loopOnce = sync.Once{}
	ctx, cancel := context.WithTimeout(c.log.WithContext(context.Background()), 5*time.Second)
	defer cancel()
	if err := c.releaseLease(ctx); err != nil {
		c.log.Warn().Err(err).Msg("Failed to release the bot device's lease; another process takes over when it expires")
	}
}

func (c *Connector) setCryptoErr(err error) {
	msg := phone.Redact(err.Error())
	c.cs.lastErr.Store(&msg)
}

// cryptoHealth adds the state of encryption to the connector's health: a
// process that leaves encryption to another one, or whose machine failed
// to start, is degraded even when the homeserver answers.
func (c *Connector) cryptoHealth(h bridge.Health) bridge.Health {
	if c.crypto == nil || h.State != bridge.HealthOK || c.cs.started.Load() {
		return h
	}
	if c.cs.elsewhere.Load() {
		return bridge.Health{State: bridge.HealthDegraded, Message: "end-to-end encryption is handled by another process"}
	}
	msg := "end-to-end encryption is not started yet"
	if p := c.cs.lastErr.Load(); p != nil {
		msg = "end-to-end encryption unavailable: " + *p
	}
	return bridge.Health{State: bridge.HealthDegraded, Message: msg}
}

func (s *cryptoState) wakeChan() chan struct{} {
	s.wakeOnce.Do(func() { s.wake = make(chan struct{}, 1) })
	return s.wake
}

// wakeUndecrypted makes the crypto loop look at kept events now.
func (c *Connector) wakeUndecrypted() {
	select {
	case c.cs.wakeChan() <- struct{}{}:
	default:
	}
}

// sessionArrived is the Olm machine's hook for a new room key.
func (c *Connector) sessionArrived(id.RoomID, id.SessionID) { c.wakeUndecrypted() }

const (
	defaultScanInterval = 2 * time.Second
	defaultKeyDeadline  = time.Minute
	defaultLease        = 30 * time.Second
)

func (c *Connector) leaseDuration() time.Duration {
	if d := c.cs.leaseDuration; d > 0 {
		return d
	}
	if d := c.cfg.Lease; d > 0 {
		return d
	}
	return defaultLease
}

func (c *Connector) scanInterval() time.Duration {
	if d := c.cs.scanInterval; d > 0 {
		return d
	}
	return defaultScanInterval
}

func (c *Connector) keyDeadline() time.Duration {
	if d := time.Duration(c.cs.keyDeadline.Load()); d > 0 {
		return d
	}
	return defaultKeyDeadline
}

// cryptoLoop keeps (or waits for) the bot device's lease and works through
// kept undecryptable events: at once when a room key arrives, and every
// scanInterval for events other processes kept and for deadlines. It also
// cross-signs the bot's device once its machine runs (crosssign.go).
func (c *Connector) cryptoLoop() {
	defer c.bg.Done()
	ctx := c.bgCtx
	lease := time.NewTicker(c.leaseDuration() / 3)
	defer lease.Stop()
	scan := time.NewTicker(c.scanInterval())
	defer scan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C:
			c.keepLease(ctx)
			c.maybeCrossSign(ctx)
			continue
		case <-scan.C:
		case <-c.cs.wakeChan():
		}
		if c.cs.started.Load() {
			if err := c.drainCryptoInbox(ctx); err != nil {
				c.log.Warn().Err(err).Msg("Failed to feed kept encryption traffic")
			}
			c.retryUndecrypted(ctx)
			c.maybeCrossSign(ctx)
		}
	}
}

// keepLease renews the lease, or takes it when its holder let it expire.
// A process that loses the lease (it could not renew in time, or another
// took it) stops its machine; one that gains it starts its machine.
func (c *Connector) keepLease(ctx context.Context) {
	owned, err := c.takeLease(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("Failed to renew the bot device's lease")
		c.cs.leaseMu.Lock()
		expired := time.Now().After(c.cs.leaseTill)
		c.cs.leaseMu.Unlock()
		if expired {
			c.stopMachine("the bot device's lease expired")
		}
		return
	}
	if !owned {
		c.stopMachine("another process took over the bot device")
		return
	}
	sctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err = c.startMachine(c.mctx(sctx)); err != nil {
		c.log.Warn().Err(err).Msg("Failed to start end-to-end encryption; retrying")
	}
}
