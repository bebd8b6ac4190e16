//go:build goolm

package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

var _ crypto.StateStore = stateStore{}

// olmCryptor is the cryptor of a build with the goolm tag. Its machine
// exists only between start and stop; the methods load it atomically and
// fail with ErrEncryptionNotReady when it does not.
type olmCryptor struct {
	c   *Connector
	log zerolog.Logger

	run       atomic.Pointer[olmRun]
	roomLocks sync.Map // id.RoomID -> *sync.Mutex
}

// olmRun is one started machine with its sync loop.
type olmRun struct {
	cli    *mautrix.Client
	mach   *crypto.OlmMachine
	cancel context.CancelFunc
	done   chan struct{}
}

// EncryptionCompiled reports whether this binary has end-to-end encryption.
func EncryptionCompiled() bool { return true }

// botDeviceName is the display name of the bot's device.
const botDeviceName = "switchboard bridge"

func newCryptor(c *Connector) (cryptor, error) {
	if !c.cfg.Encryption.Allow {
		return nil, nil
	}
	if c.cfg.Encryption.PickleKey == "" || c.cfg.Encryption.PickleKey == "generate" {
		return nil, fmt.Errorf("%w: encryption.pickle_key is not set", ErrConfig)
	}
	// The hook drops mautrix's per-request log lines, which carry bodies.
	return &olmCryptor{c: c, log: c.log.With().Str("component", "crypto").Logger().Hook(requestLogFilter{})}, nil
}

func (o *olmCryptor) start(ctx context.Context, onSession func(id.RoomID, id.SessionID)) error {
	if o.run.Load() != nil {
		return nil
	}
	c := o.c
	cli, err := mautrix.NewClient(c.cfg.Homeserver.Address, c.bot, c.cfg.Appservice.ASToken)
	if err != nil {
		return err
	}
	cli.Log = o.log
	cli.StateStore = c.as.StateStore
	store := crypto.NewSQLCryptoStore(c.rawDB, dbutil.ZeroLogger(o.log.With().Str("db_section", "crypto").Logger()),
		"", "", []byte(c.cfg.Encryption.PickleKey))
	if err = store.DB.Upgrade(ctx); err != nil {
		return fmt.Errorf("%w: crypto store: %w", ErrDatabase, err)
	}
	deviceID, err := store.FindDeviceID(ctx)
	if err != nil {
		return fmt.Errorf("%w: find device: %w", ErrDatabase, err)
	}
	created := false
	if c.cfg.Encryption.MSC4190 {
		if created, err = createDevice(ctx, cli, deviceID, botDeviceName); err != nil {
			return err
		}
	}
	if !created {
		localpart, _, _ := c.bot.Parse()
		_, err = cli.Login(ctx, &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypeAppservice,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
			DeviceID:                 deviceID,
			InitialDeviceDisplayName: botDeviceName,
			StoreCredentials:         true,
		})
		if err != nil {
			return classify("log in bot device", err)
		}
	}
	store.DeviceID = cli.DeviceID
	cli.Store = store
	mach := crypto.NewOlmMachine(cli, &o.log, store, c.as.StateStore.(crypto.StateStore))
	if err = mach.Load(ctx); err != nil {
		return fmt.Errorf("load olm account: %w", err)
	}
	// Without /sync, one-time-key counts come only when they change:
	// ask for them once (ShareKeys tops the keys up when they run low).
	if !mach.GetAccount().Shared || c.cfg.Encryption.Appservice {
		if err = mach.ShareKeys(ctx, -1); err != nil {
			return classify("upload device keys", err)
		}
	}
	if onSession != nil {
		mach.SessionReceived = func(_ context.Context, room id.RoomID, session id.SessionID, _ uint32) {
			onSession(room, session)
		}
	}
	if c.cfg.Encryption.Appservice {
		// Transactions bring the encryption traffic (astxn.go): no /sync.
		run := &olmRun{cli: cli, mach: mach, cancel: func() {}, done: make(chan struct{})}
		close(run.done)
		o.run.Store(run)
		o.log.Info().Stringer("device_id", cli.DeviceID).Bool("msc4190", created).
			Msg("End-to-end encryption ready; encryption traffic comes in transactions")
		return nil
	}
	syncer := mautrix.NewDefaultSyncer()
	syncer.OnSync(mach.ProcessSyncResponse)
	syncer.OnEventType(event.StateMember, mach.HandleMemberEvent)
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnEventType(event.EphemeralEventTyping, c.handleTyping)
	syncer.OnEventType(event.EphemeralEventReceipt, c.handleReceipt)
	syncer.OnEventType(event.EventRedaction, c.handleSyncRedaction)
	syncer.ParseErrorHandler = func(*event.Event, error) bool { return false }
	cli.Syncer = syncer
	bg, cancel := context.WithCancel(c.log.WithContext(context.Background()))
	run := &olmRun{cli: cli, mach: mach, cancel: cancel, done: make(chan struct{})}
	go o.syncLoop(c.mctx(bg), run)
	o.run.Store(run)
	o.log.Info().Stringer("device_id", cli.DeviceID).Bool("msc4190", created).Msg("End-to-end encryption ready")
	return nil
}

func (o *olmCryptor) syncLoop(ctx context.Context, run *olmRun) {
	defer close(run.done)
	wait := time.Second
	for {
		err := run.cli.SyncWithContext(ctx)
		if ctx.Err() != nil {
			return
		}
		o.log.Warn().Err(err).Msg("Sync loop failed, restarting")
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}

func (o *olmCryptor) stop() {
	if run := o.run.Swap(nil); run != nil {
		run.cancel()
		<-run.done
	}
}

// machine returns the running machine, or ErrEncryptionNotReady.
func (o *olmCryptor) machine() (*crypto.OlmMachine, error) {
	run := o.run.Load()
	if run == nil {
		return nil, ErrEncryptionNotReady
	}
	return run.mach, nil
}

func (o *olmCryptor) decrypt(ctx context.Context, evt *event.Event) (*event.Event, error) {
	mach, err := o.machine()
	if err != nil {
		return nil, err
	}
	decrypted, err := mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) {
		return nil, fmt.Errorf("%w: %w", errNoSession, err)
	} else if err != nil {
		return nil, err
	}
	return decrypted, nil
}

func (o *olmCryptor) hasSession(ctx context.Context, room id.RoomID, session id.SessionID) (bool, error) {
	mach, err := o.machine()
	if err != nil {
		return false, err
	}
	sess, err := mach.CryptoStore.GetGroupSession(ctx, room, session)
	if errors.Is(err, crypto.ErrGroupSessionWithheld) {
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("%w: group session: %w", ErrDatabase, err)
	}
	return sess != nil, nil
}

func (o *olmCryptor) requestKey(ctx context.Context, room id.RoomID, senderKey id.SenderKey, session id.SessionID, user id.UserID, device id.DeviceID) error {
	mach, err := o.machine()
	if err != nil {
		return err
	}
	if device == "" {
		device = "*"
	}
	err = mach.SendRoomKeyRequest(ctx, room, senderKey, session, "", map[id.UserID][]id.DeviceID{user: {device}})
	return classify("room key request", err)
}

func (o *olmCryptor) roomLock(room id.RoomID) *sync.Mutex {
	lock, _ := o.roomLocks.LoadOrStore(room, &sync.Mutex{})
	return lock.(*sync.Mutex)
}

func (o *olmCryptor) encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error) {
	mach, err := o.machine()
	if err != nil {
		return nil, err
	}
	lock := o.roomLock(room)
	lock.Lock()
	defer lock.Unlock()
	encrypted, err := mach.EncryptMegolmEvent(ctx, room, typ, content)
	if err == nil {
		return encrypted, nil
	}
	if !errors.Is(err, crypto.ErrSessionExpired) && !errors.Is(err, crypto.ErrNoGroupSession) && !errors.Is(err, crypto.ErrSessionNotShared) {
		return nil, err
	}
	members, err := o.c.as.BotClient().Members(ctx, room)
	if err != nil {
		return nil, classify("room members", err)
	}
	var users []id.UserID
	for _, evt := range members.Chunk {
		_ = evt.Content.ParseRaw(evt.Type)
		switch evt.Content.AsMember().Membership {
		case event.MembershipJoin, event.MembershipInvite:
			users = append(users, id.UserID(evt.GetStateKey()))
		}
	}
	// The sync loop may drop the new outbound session between sharing and
	// encrypting (a membership change in the room, such as the bot's own
	// join, invalidates it): share once more before giving up.
	for attempt := 0; ; attempt++ {
		if err = mach.ShareGroupSession(ctx, room, users); err != nil {
			return nil, fmt.Errorf("share room key: %w", err)
		}
		encrypted, err = mach.EncryptMegolmEvent(ctx, room, typ, content)
		if attempt > 0 || !errors.Is(err, crypto.ErrNoGroupSession) {
			return encrypted, err
		}
	}
}
