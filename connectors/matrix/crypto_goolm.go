//go:build goolm

package matrix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

var _ crypto.StateStore = stateStore{}

// sessionWait is how long decryption waits for a room key that has not
// arrived through the sync loop yet.
const sessionWait = 10 * time.Second

type olmCryptor struct {
	c     *Connector
	cli   *mautrix.Client
	store *crypto.SQLCryptoStore
	mach  *crypto.OlmMachine
	log   zerolog.Logger

	roomLocks sync.Map // id.RoomID -> *sync.Mutex
	cancel    context.CancelFunc
	done      chan struct{}
}

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

func (o *olmCryptor) start(ctx context.Context) error {
	c := o.c
	cli, err := mautrix.NewClient(c.cfg.Homeserver.Address, c.bot, c.cfg.Appservice.ASToken)
	if err != nil {
		return err
	}
	cli.Log = o.log
	cli.StateStore = c.as.StateStore
	o.cli = cli
	o.store = crypto.NewSQLCryptoStore(c.rawDB, dbutil.ZeroLogger(o.log.With().Str("db_section", "crypto").Logger()),
		"", "", []byte(c.cfg.Encryption.PickleKey))
	if err = o.store.DB.Upgrade(ctx); err != nil {
		return fmt.Errorf("%w: crypto store: %w", ErrDatabase, err)
	}
	deviceID, err := o.store.FindDeviceID(ctx)
	if err != nil {
		return fmt.Errorf("%w: find device: %w", ErrDatabase, err)
	}
	localpart, _, _ := c.bot.Parse()
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypeAppservice,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		DeviceID:                 deviceID,
		InitialDeviceDisplayName: "switchboard bridge",
		StoreCredentials:         true,
	})
	if err != nil {
		return classify("log in bot device", err)
	}
	o.store.DeviceID = cli.DeviceID
	cli.Store = o.store
	o.mach = crypto.NewOlmMachine(cli, &o.log, o.store, c.as.StateStore.(crypto.StateStore))
	if err = o.mach.Load(ctx); err != nil {
		return fmt.Errorf("load olm account: %w", err)
	}
	if !o.mach.GetAccount().Shared {
		if err = o.mach.ShareKeys(ctx, -1); err != nil {
			return classify("upload device keys", err)
		}
	}
	syncer := mautrix.NewDefaultSyncer()
	syncer.OnSync(o.mach.ProcessSyncResponse)
	syncer.OnEventType(event.StateMember, o.mach.HandleMemberEvent)
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnEventType(event.EphemeralEventTyping, c.handleTyping)
	syncer.OnEventType(event.EphemeralEventReceipt, c.handleReceipt)
	syncer.OnEventType(event.EventRedaction, c.handleSyncRedaction)
	syncer.ParseErrorHandler = func(*event.Event, error) bool { return false }
	cli.Syncer = syncer
	bg, cancel := context.WithCancel(c.log.WithContext(context.Background()))
	o.cancel, o.done = cancel, make(chan struct{})
	go o.syncLoop(c.mctx(bg))
	o.log.Info().Stringer("device_id", cli.DeviceID).Msg("End-to-end encryption ready")
	return nil
}

func (o *olmCryptor) syncLoop(ctx context.Context) {
	defer close(o.done)
	wait := time.Second
	for {
		err := o.cli.SyncWithContext(ctx)
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
	if o.cancel != nil {
		o.cancel()
		<-o.done
	}
}

func (o *olmCryptor) decrypt(ctx context.Context, evt *event.Event) (*event.Event, error) {
	decrypted, err := o.mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) {
		content := evt.Content.AsEncrypted()
		if o.mach.WaitForSession(ctx, evt.RoomID, content.SenderKey, content.SessionID, sessionWait) {
			decrypted, err = o.mach.DecryptMegolmEvent(ctx, evt)
		}
	}
	if err != nil {
		return nil, err
	}
	return decrypted, nil
}

func (o *olmCryptor) roomLock(room id.RoomID) *sync.Mutex {
	lock, _ := o.roomLocks.LoadOrStore(room, &sync.Mutex{})
	return lock.(*sync.Mutex)
}

func (o *olmCryptor) encrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (*event.EncryptedEventContent, error) {
	lock := o.roomLock(room)
	lock.Lock()
	defer lock.Unlock()
	encrypted, err := o.mach.EncryptMegolmEvent(ctx, room, typ, content)
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
	if err = o.mach.ShareGroupSession(ctx, room, users); err != nil {
		return nil, fmt.Errorf("share room key: %w", err)
	}
	return o.mach.EncryptMegolmEvent(ctx, room, typ, content)
}
