package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/migrations"
)

// Consent kinds recorded in the consent log.
const (
	ConsentSMS    = "sms"
	ConsentReveal = "reveal"
)

// Prefs are one person's settings. The zero value is the default: no SMS
// fallback, number hidden, no preferred network.
type Prefs struct {
	// SMS is true once the person opted in to SMS fallback for their
	// outgoing chats (SMS is not end-to-end encrypted).
	SMS bool
	// Reveal is true when contacts may see the person's phone number.
	Reveal bool
	// Prefer is where messages for the person should land ("" = no preference).
	Prefer bridge.NetworkID
}

// Consent is one recorded opt-in or opt-out.
type Consent struct {
	Kind  string
	Value bool
	At    time.Time
}

// Store keeps preferences and consents. Create it with New, then Upgrade.
type Store struct {
	db     *dbutil.Database
	now    func() time.Time
	vault  *Vault
	pseudo *Pseudonyms
}

// New returns a store on the shared database. It does no I/O.
func New(db *dbutil.Database) *Store {
	return &Store{db: db, now: time.Now}
}

// Upgrade runs the identity migrations (version table sb_identity_version).
func (s *Store) Upgrade(ctx context.Context, log zerolog.Logger) error {
	db, err := database.Upgrade(ctx, s.db, migrations.Identity, log)
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

const (
	getPrefsQuery = `SELECT sms_optin, reveal, prefer FROM sb_identity_pref WHERE address=$1`
	upsertBase    = `INSERT INTO sb_identity_pref (address, updated_at) VALUES ($1, $2) ON CONFLICT (address) DO NOTHING`
	setSMSQuery   = `UPDATE sb_identity_pref SET sms_optin=$2, updated_at=$3 WHERE address=$1`
	setRevealQ    = `UPDATE sb_identity_pref SET reveal=$2, updated_at=$3 WHERE address=$1`
	setPreferQ    = `UPDATE sb_identity_pref SET prefer=$2, updated_at=$3 WHERE address=$1`
	addConsentQ   = `INSERT INTO sb_identity_consent (address, kind, value, at) VALUES ($1, $2, $3, $4)`
	consentsQuery = `SELECT kind, value, at FROM sb_identity_consent WHERE address=$1 ORDER BY at, kind`
)

// Prefs returns a person's preferences (defaults if none were set).
func (s *Store) Prefs(ctx context.Context, addr bridge.Address) (Prefs, error) {
	var p Prefs
	err := s.db.QueryRow(ctx, getPrefsQuery, addr.String()).Scan(&p.SMS, &p.Reveal, &p.Prefer)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Prefs{}, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return p, nil
}

// SetSMS records an SMS fallback opt-in (on) or opt-out (off).
func (s *Store) SetSMS(ctx context.Context, addr bridge.Address, on bool) error {
	return s.set(ctx, addr, setSMSQuery, on, ConsentSMS)
}

// SetReveal records whether contacts may see the person's number.
func (s *Store) SetReveal(ctx context.Context, addr bridge.Address, on bool) error {
	return s.set(ctx, addr, setRevealQ, on, ConsentReveal)
}

// SetPrefer records where the person wants messages delivered.
func (s *Store) SetPrefer(ctx context.Context, addr bridge.Address, network bridge.NetworkID) error {
	switch network {
	case bridge.NetworkMatrix, bridge.NetworkWhatsApp, bridge.NetworkSMS:
	default:
		return fmt.Errorf("%w: prefer %q", ErrInvalidPreference, network)
	}
	return s.set(ctx, addr, setPreferQ, string(network), "")
}

func (s *Store) set(ctx context.Context, addr bridge.Address, query string, value any, consent string) error {
	now := s.now().UnixMilli()
	err := s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		if _, err := s.db.Exec(ctx, upsertBase, addr.String(), now); err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, query, addr.String(), value, now); err != nil {
			return err
		}
		if consent != "" {
			_, err := s.db.Exec(ctx, addConsentQ, addr.String(), consent, value, now)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return nil
}

// Consents lists a person's recorded consents, oldest first.
func (s *Store) Consents(ctx context.Context, addr bridge.Address) ([]Consent, error) {
	rows, err := s.db.Query(ctx, consentsQuery, addr.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var out []Consent
	for rows.Next() {
		var c Consent
		var at int64
		if err = rows.Scan(&c.Kind, &c.Value, &at); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
		}
		c.At = time.UnixMilli(at)
		out = append(out, c)
	}
	return out, rows.Err()
}
