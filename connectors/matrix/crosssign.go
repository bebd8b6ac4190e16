package matrix

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix/crypto/utils"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/internal/keyring"
)

// The bot cross-signs its own device, so clients show the bridge's
// messages as coming from a device its owner verified. Its cross-signing
// identity (master, self-signing and user-signing keys) and the
// secret-storage key that protects the private keys on the homeserver (the
// "recovery key") are generated once, sealed into sb_matrix_cross_signing
// before anything is uploaded, and reused on every later start:
//
//   - no row, nothing published: generate, seal, store; then publish (next
//     case);
//   - a row, nothing published (an earlier upload was refused, or the
//     homeserver lost it): publish the stored keys, answering the
//     homeserver's interactive authentication with the bot's password when
//     it asks for one (Dendrite always does; Synapse lets appservice users
//     and first uploads through without), then put the private keys into
//     secret storage under the recovery key;
//   - the homeserver publishes our master key: nothing to upload;
//   - the homeserver publishes another master key (someone replaced it),
//     or has one while we have no row (our database was reset): nothing is
//     overwritten; the device stays unverified and an error is logged.
//
// Then the bot's device is signed with the self-signing key unless the
// homeserver already shows that signature. The process that owns the bot
// device (cryptolease.go) does this after its Olm machine starts, from the
// crypto loop, retrying with a backoff when it fails.
//
// The recovery key is never logged. An admin can see it once, in their
// encrypted direct chat with the bot (ShowRecoveryKey); there is no
// rotation through the bot, see ShowRecoveryKey.

const (
	xsSelectQuery = `SELECT master_key, secrets, published, shown_at FROM sb_matrix_cross_signing WHERE user_id=$1`
	xsInsertQuery = `INSERT INTO sb_matrix_cross_signing (user_id, master_key, secrets, published, created_at)
		VALUES ($1, $2, $3, false, $4) ON CONFLICT (user_id) DO NOTHING`
	xsPublishedQuery = `UPDATE sb_matrix_cross_signing SET published=true WHERE user_id=$1 AND master_key=$2`
	xsShownQuery     = `UPDATE sb_matrix_cross_signing SET shown_at=$2, shown_to=$3 WHERE user_id=$1 AND shown_at IS NULL`

	// xsFirstRetry and xsMaxRetry bound the wait between failed attempts.
	xsFirstRetry = time.Minute
	xsMaxRetry   = time.Hour
	// xsTimeout bounds one attempt.
	xsTimeout = time.Minute
)

// crossSigner is the optional capability of a cryptor that can cross-sign
// the bot's device (the goolm build's). crossSign runs one attempt on the
// running machine; password answers the homeserver's m.login.password
// stage ("" when none was given).
type crossSigner interface {
	crossSign(ctx context.Context, password string) error
}

// crossSignState schedules attempts: done for the machine that started at
// doneFor, none before next.
type crossSignState struct {
	mu       sync.Mutex
	password string
	doneFor  time.Time
	next     time.Time
	backoff  time.Duration
}

// crossSigningRow is the bot's row of sb_matrix_cross_signing.
type crossSigningRow struct {
	MasterKey string
	Sealed    string
	Published bool
	Shown     bool
}

// crossSigningSecrets is what the row seals: the private seeds of the
// three cross-signing keys and the secret-storage key with its ID and
// metadata (as uploaded to the homeserver's account data).
type crossSigningSecrets struct {
	Master      []byte          `json:"master"`
	SelfSigning []byte          `json:"self_signing"`
	UserSigning []byte          `json:"user_signing"`
	SSSSKeyID   string          `json:"ssss_key_id"`
	SSSSKey     []byte          `json:"ssss_key"`
	SSSSMeta    json.RawMessage `json:"ssss_meta"`
}

// RecoveryKey is the secret-storage key in the form clients ask for
// (base58, in groups of four).
func (s *crossSigningSecrets) RecoveryKey() string { return utils.EncodeBase58RecoveryKey(s.SSSSKey) }

// SetCrossSigningPassword gives the connector the bot user's password, for
// homeservers that ask for it (user-interactive authentication,
// m.login.password) before accepting the bot's cross-signing keys: Dendrite
// does, also for appservice users, which have no password until an admin
// sets one (Dendrite: POST /_dendrite/admin/resetPassword/<bot user ID>).
// It is used for nothing else and never stored. A pending attempt is
// retried at once.
func (c *Connector) SetCrossSigningPassword(password string) {
	c.cs.xs.mu.Lock()
	c.cs.xs.password = password
	c.cs.xs.next = time.Time{}
	c.cs.xs.backoff = 0
	c.cs.xs.mu.Unlock()
	c.wakeUndecrypted()
}

// maybeCrossSign runs a cross-signing attempt when the running machine has
// not been cross-signed yet and no failure asks to wait. The crypto loop
// calls it.
func (c *Connector) maybeCrossSign(ctx context.Context) {
	signer, ok := c.crypto.(crossSigner)
	if !ok || !c.cs.started.Load() {
		return
	}
	c.cs.mu.Lock()
	started := c.cs.startedAt
	c.cs.mu.Unlock()
	st := &c.cs.xs
	st.mu.Lock()
	if st.doneFor.Equal(started) || time.Now().Before(st.next) {
		st.mu.Unlock()
		return
	}
	password := st.password
	st.mu.Unlock()

	actx, cancel := context.WithTimeout(ctx, xsTimeout)
	err := signer.crossSign(c.mctx(actx), password)
	cancel()
	st.mu.Lock()
	defer st.mu.Unlock()
	if err == nil {
		st.doneFor, st.next, st.backoff = started, time.Time{}, 0
		c.log.Debug().Msg("The bot's device is cross-signed")
		return
	}
	st.backoff = min(max(st.backoff*2, xsFirstRetry), xsMaxRetry)
	st.next = time.Now().Add(st.backoff)
	ev := c.log.Warn()
	if errors.Is(err, ErrCrossSigningMismatch) || errors.Is(err, ErrCrossSigningForeign) {
		ev = c.log.Error()
	}
	ev.Err(err).Stringer("retry_in", st.backoff).Msg("The bot's device is not cross-signed; clients show it as unverified")
}

// xsAEAD is the sealing key of sb_matrix_cross_signing.secrets.
func (c *Connector) xsAEAD() (*keyring.AEAD, error) {
	k, err := keyring.New([]byte(c.cfg.Secret))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return k.AEAD(keyring.MatrixCrossSigningEncryption), nil
}

// xsAD binds a sealed row to its table and user.
func xsAD(user id.UserID) string { return "sb_matrix_cross_signing\x00" + string(user) }

// loadCrossSigning returns the bot's row, nil when there is none.
func (c *Connector) loadCrossSigning(ctx context.Context) (*crossSigningRow, error) {
	var row crossSigningRow
	var shownAt sql.NullInt64
	err := c.db.QueryRow(ctx, xsSelectQuery, c.bot).Scan(&row.MasterKey, &row.Sealed, &row.Published, &shownAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w: cross-signing keys: %w", ErrDatabase, err)
	}
	row.Shown = shownAt.Valid
	return &row, nil
}

// storeCrossSigning seals and stores freshly generated secrets with their
// master public key, unless a row exists, and returns the row now stored.
func (c *Connector) storeCrossSigning(ctx context.Context, masterKey string, secrets *crossSigningSecrets) (*crossSigningRow, error) {
	aead, err := c.xsAEAD()
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return nil, err
	}
	sealed := aead.SealString(string(plain), xsAD(c.bot))
	if err = c.exec(ctx, xsInsertQuery, c.bot, masterKey, sealed, ms(time.Now())); err != nil {
		return nil, err
	}
	row, err := c.loadCrossSigning(ctx)
	if err == nil && row == nil {
		err = fmt.Errorf("%w: cross-signing keys vanished after insert", ErrDatabase)
	}
	return row, err
}

// openCrossSigning opens a row's secrets.
func (c *Connector) openCrossSigning(row *crossSigningRow) (*crossSigningSecrets, error) {
	aead, err := c.xsAEAD()
	if err != nil {
		return nil, err
	}
	plain, err := aead.OpenString(row.Sealed, xsAD(c.bot))
	if err != nil {
		return nil, fmt.Errorf("%w: cross-signing keys (was identity.secret changed?): %w", ErrDatabase, err)
	}
	var secrets crossSigningSecrets
	if err = json.Unmarshal([]byte(plain), &secrets); err != nil {
		return nil, fmt.Errorf("%w: cross-signing keys: %w", ErrDatabase, err)
	}
	return &secrets, nil
}

// markCrossSigningPublished records that the homeserver holds masterKey's
// identity and its secret storage.
func (c *Connector) markCrossSigningPublished(ctx context.Context, masterKey string) error {
	return c.exec(ctx, xsPublishedQuery, c.bot, masterKey)
}

var _ commands.RecoveryKeyShower = (*Connector)(nil)

// ShowRecoveryKey implements commands.RecoveryKeyShower: it returns the
// recovery key of the bot's cross-signing identity to an admin, once. The
// request must come from the admin's own direct chat with the bot, and that
// chat must be encrypted (the answer is a message the homeserver keeps).
// The key is marked shown (when, to whom) before it is returned, in one
// conditional update, so two requests racing cannot both see it; a later
// request gets commands.ErrRecoveryKeyShown.
//
// There is no rotation through the bot: a new identity would make every
// client that trusted the bridge's device warn about a changed identity,
// and the bridge needs the recovery key for nothing while its database
// holds the keys. The key matters when the database is lost: it unlocks
// the private keys in the bot's secret storage on the homeserver.
func (c *Connector) ShowRecoveryKey(ctx context.Context, req *commands.Request) (string, error) {
	if req.User.Network != bridge.NetworkMatrix || req.Room == "" {
		return "", commands.ErrNotDirectChat
	}
	if c.db == nil {
		return "", ErrNotStarted
	}
	admin, room := id.UserID(req.User.ID), id.RoomID(req.Room)
	owner, err := c.managementRoomUser(ctx, room)
	if err != nil {
		return "", err
	}
	if owner != admin {
		return "", commands.ErrNotDirectChat
	}
	encrypted, err := c.IsEncrypted(ctx, bridge.ChatID(room))
	if err != nil {
		return "", err
	}
	if !encrypted {
		return "", commands.ErrNotEncrypted
	}
	row, err := c.loadCrossSigning(ctx)
	if err != nil {
		return "", err
	}
	if row == nil {
		return "", commands.ErrNoRecoveryKey
	}
	secrets, err := c.openCrossSigning(row)
	if err != nil {
		return "", err
	}
	won, err := c.execOne(ctx, "mark recovery key shown", xsShownQuery, c.bot, ms(time.Now()), admin)
	if err != nil {
		return "", err
	}
	if !won {
		return "", commands.ErrRecoveryKeyShown
	}
	c.log.Info().Stringer("admin", admin).Msg("Showed the bot's recovery key to an admin")
	return secrets.RecoveryKey(), nil
}
