package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/store/sqlstore/upgrades"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// Client is the part of *whatsmeow.Client the connector uses. Keeping
// whatsmeow behind this interface lets tests drive the connector with an
// in-memory fake (WhatsApp's servers cannot be reached from tests) and
// keeps a newer whatsmeow a version bump: only this file and the
// conversion code name whatsmeow types.
type Client interface {
	Connect() error
	Disconnect()
	IsConnected() bool
	IsLoggedIn() bool
	Logout(ctx context.Context) error
	AddEventHandlerWithSuccessStatus(handler whatsmeow.EventHandlerWithSuccessStatus) uint32
	GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error)
	PairPhone(ctx context.Context, phone string, showPushNotification bool, clientType whatsmeow.PairClientType, clientDisplayName string) (string, error)

	SendMessage(ctx context.Context, to types.JID, message *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error)
	BuildEdit(chat types.JID, id types.MessageID, newContent *waE2E.Message) *waE2E.Message
	BuildReaction(chat, sender types.JID, id types.MessageID, reaction string) *waE2E.Message
	BuildRevoke(chat, sender types.JID, id types.MessageID) *waE2E.Message
	BuildPollCreation(name string, optionNames []string, selectableOptionCount int) *waE2E.Message
	EncryptPollVote(ctx context.Context, pollInfo *types.MessageInfo, vote *waE2E.PollVoteMessage) (*waE2E.PollUpdateMessage, error)
	DecryptPollVote(ctx context.Context, vote *events.Message) (*waE2E.PollVoteMessage, error)
	Upload(ctx context.Context, plaintext []byte, appInfo whatsmeow.MediaType) (whatsmeow.UploadResponse, error)
	Download(ctx context.Context, msg whatsmeow.DownloadableMessage) ([]byte, error)
	MarkRead(ctx context.Context, ids []types.MessageID, timestamp time.Time, chat, sender types.JID, receiptTypeExtra ...types.ReceiptType) error
	SendChatPresence(ctx context.Context, jid types.JID, state types.ChatPresence, media types.ChatPresenceMedia) error
	IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error)
	SetDisappearingTimer(ctx context.Context, chat types.JID, timer time.Duration, settingTS time.Time) error
	GetGroupInfo(ctx context.Context, jid types.JID) (*types.GroupInfo, error)
	CreateGroup(ctx context.Context, req whatsmeow.ReqCreateGroup) (*types.GroupInfo, error)
	LeaveGroup(ctx context.Context, jid types.JID) error
}

var _ Client = (*whatsmeow.Client)(nil)

// Sessions creates and deletes the WhatsApp sessions (linked devices) the
// connector's clients run on. SQLSessions is the production one.
type Sessions interface {
	// Upgrade prepares the session store (migrations). Called by Start.
	Upgrade(ctx context.Context) error
	// New returns a client on a fresh, unpaired device, for a login.
	New(ctx context.Context) (Client, error)
	// Load returns a client on the stored device with that JID, or
	// ErrNoSession if there is none (logged out while the bridge was down).
	Load(ctx context.Context, jid types.JID) (Client, error)
	// Delete removes a stored device and its keys. Deleting a device that
	// does not exist is not an error.
	Delete(ctx context.Context, jid types.JID) error
}

// SQLSessions keeps whatsmeow's sessions with store/sqlstore in the
// bridge's database (version table whatsmeow_version). whatsmeow's tables
// hold the Signal keys; the decrypted-event buffer (plaintext) is not
// enabled, so no message body is stored, and the address book is not kept
// (privateStores). What whatsmeow must keep is keyed by JID: every device
// it loads or pairs stores through the wrappers of storecrypt.go, which
// hash or encrypt contacts' numbers (keys from identity.secret).
type SQLSessions struct {
	container *sqlstore.Container
	sealed    *sealedContainer
	db        *dbutil.Database
	keys      *storeKeys
	log       zerolog.Logger
}

var _ Sessions = (*SQLSessions)(nil)

// NewSQLSessions wraps the bridge's database for whatsmeow, with the keys
// that protect contacts' numbers derived from secret (identity.secret). It
// does no I/O.
func NewSQLSessions(db *dbutil.Database, secret string, log zerolog.Logger) (*SQLSessions, error) {
	k, err := deriveStoreKeys(secret)
	if err != nil {
		return nil, err
	}
	log = log.With().Str("component", "whatsmeow").Logger()
	child := db.Child("whatsmeow_version", upgrades.Table, dbutil.ZeroLogger(log.With().Str("db_section", "whatsmeow_version").Logger()))
	container := sqlstore.NewWithWrappedDB(child, waLogger(log))
	return &SQLSessions{container: container, sealed: &sealedContainer{inner: container, k: k}, db: child, keys: k, log: log}, nil
}

// Upgrade implements Sessions. After whatsmeow's migrations it protects
// the contact numbers an older version let whatsmeow store in clear
// (sealLegacyRows).
func (s *SQLSessions) Upgrade(ctx context.Context) error {
	if err := s.container.Upgrade(ctx); err != nil {
		return fmt.Errorf("%w: whatsmeow_version: %w", ErrSessionStore, err)
	}
	if err := s.sealLegacyRows(ctx); err != nil {
		return fmt.Errorf("%w: protect stored numbers: %w", ErrSessionStore, err)
	}
	return nil
}

// New implements Sessions. A new device's client does not retry its first
// connection in the background, so a login fails at once when WhatsApp
// cannot be reached.
func (s *SQLSessions) New(context.Context) (Client, error) {
	dev := s.container.NewDevice()
	// Pairing saves the device through the wrapper, which protects its stores.
	dev.Container = s.sealed
	cli := s.client(dev)
	cli.InitialAutoReconnect = false
	return cli, nil
}

// Load implements Sessions.
func (s *SQLSessions) Load(ctx context.Context, jid types.JID) (Client, error) {
	dev, err := s.container.GetDevice(ctx, s.keys.sealJID(jid))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSessionStore, err)
	} else if dev == nil {
		return nil, ErrNoSession
	}
	if err = s.sealed.loaded(dev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSessionStore, err)
	}
	return s.client(dev), nil
}

// Delete implements Sessions.
func (s *SQLSessions) Delete(ctx context.Context, jid types.JID) error {
	dev, err := s.container.GetDevice(ctx, s.keys.sealJID(jid))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSessionStore, err)
	} else if dev == nil {
		return nil
	}
	if err = s.container.DeleteDevice(ctx, dev); err != nil && !errors.Is(err, sqlstore.ErrDeviceIDMustBeSet) {
		return fmt.Errorf("%w: %w", ErrSessionStore, err)
	}
	return nil
}

// noStore keeps nothing (see privateStores).
var noStore = &store.NoopStore{}

// privateStores stops whatsmeow from keeping the account's address book
// and chat settings: its contacts table would hold every contact's number
// and name in clear, and the bridge needs neither (push names come with
// each message). The Signal sessions, identities, prekeys, sender keys,
// LID map and privacy tokens it needs to send and receive stay, behind
// the wrappers of storecrypt.go (sealedContainer.protect calls this).
func privateStores(dev *store.Device) {
	dev.Contacts = noStore
	dev.ChatSettings = noStore
}

func (s *SQLSessions) client(dev *store.Device) *whatsmeow.Client {
	s.sealed.protect(dev)
	cli := whatsmeow.NewClient(dev, waLogger(s.log))
	// Acknowledge a message only after the router accepted it, so a crash
	// in between makes WhatsApp deliver it again (and the router dedupes).
	cli.SynchronousAck = true
	cli.EnableAutoReconnect = true
	cli.InitialAutoReconnect = true
	cli.EnableDecryptedEventBuffer = false
	// whatsmeow does not download history by itself: the connector does,
	// only for accounts that backfill (backfill.go), never for the relay.
	cli.ManualHistorySyncDownload = true
	return cli
}

// waLogger adapts zerolog for whatsmeow. whatsmeow's lines name JIDs,
// whose user part is a phone number, and may quote message fields; so its
// debug and info lines are dropped and its warnings and errors go out with
// every run of digits and every JID redacted.
func waLogger(log zerolog.Logger) waLog.Logger {
	return &scrubLogger{log: log}
}

type scrubLogger struct {
	log    zerolog.Logger
	module string
}

// jidPattern matches JIDs and long digit runs (numbers, LIDs).
var jidPattern = regexp.MustCompile(`[0-9][0-9.:_-]*@[a-z.]+|[0-9][0-9 .()/-]{4,}[0-9]`)

func scrub(s string) string { return jidPattern.ReplaceAllString(s, "[redacted]") }

func (l *scrubLogger) emit(level zerolog.Level, msg string, args []any) {
	if l.log.GetLevel() > level {
		return
	}
	//nolint:zerologlint // whatsmeow's printf-style lines, scrubbed
	l.log.WithLevel(level).Str("module", l.module).Msg(scrub(fmt.Sprintf(msg, args...)))
}

func (l *scrubLogger) Errorf(msg string, args ...any) { l.emit(zerolog.ErrorLevel, msg, args) }
func (l *scrubLogger) Warnf(msg string, args ...any)  { l.emit(zerolog.WarnLevel, msg, args) }
func (l *scrubLogger) Infof(string, ...any)           {}
func (l *scrubLogger) Debugf(string, ...any)          {}
func (l *scrubLogger) Sub(module string) waLog.Logger {
	if l.module != "" {
		module = l.module + "/" + module
	}
	return &scrubLogger{log: l.log, module: module}
}
