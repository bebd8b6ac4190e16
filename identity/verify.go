package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Verification limits (the identity issue's contract).
const (
	CodeLifetime     = 10 * time.Minute
	MaxTries         = 5
	CodesPerUserHour = 3
	CodesPerNumHour  = 3
	rateWindow       = time.Hour
)

// Verifier issues and checks the 6-digit codes that prove a person owns a
// phone number before it is linked to them. Codes expire after
// CodeLifetime, are single-use, allow MaxTries wrong tries, and are
// rate-limited per person and per number.
type Verifier struct {
	store *Store
	vault *Vault
}

// Verifier returns the store's verifier, using vault for numbers and codes.
func (s *Store) Verifier(vault *Vault) *Verifier { return &Verifier{store: s, vault: vault} }

const (
	countUserRequestsQ = `SELECT COUNT(*) FROM sb_identity_code_request WHERE address=$1 AND at > $2`
	countNumRequestsQ  = `SELECT COUNT(*) FROM sb_identity_code_request WHERE number_lookup=$1 AND at > $2`
	addRequestQ        = `INSERT INTO sb_identity_code_request (address, number_lookup, at) VALUES ($1, $2, $3)`
	deletePendingQ     = `DELETE FROM sb_identity_verification WHERE address=$1`
	insertPendingQ     = `
		INSERT INTO sb_identity_verification (address, number_lookup, number_enc, code_hash, created_at, expires_at, tries)
		VALUES ($1, $2, $3, $4, $5, $6, 0)`
	getPendingQ   = `SELECT number_lookup, number_enc, code_hash, expires_at, tries FROM sb_identity_verification WHERE address=$1`
	addTryQ       = `UPDATE sb_identity_verification SET tries = tries + 1 WHERE address=$1`
	purgeRequestQ = `DELETE FROM sb_identity_code_request WHERE at <= $1`
)

func (v *Verifier) codeHash(addr bridge.Address, code string) string {
	return v.vault.Lookup("code\x00" + addr.String() + "\x00" + code)
}

// Start begins linking number (E.164, already validated) to addr: it checks
// the rate limits, replaces any pending code of addr, and returns the new
// code for the caller to send to the number. The code itself is not stored.
func (v *Verifier) Start(ctx context.Context, addr bridge.Address, number string) (string, error) {
	now := v.store.now()
	since := now.Add(-rateWindow).UnixMilli()
	lookup := v.vault.Lookup(number)
	code, err := newCode()
	if err != nil {
		return "", err
	}
	db := v.store.db
	err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
		var n int
		if err := db.QueryRow(ctx, countUserRequestsQ, addr.String(), since).Scan(&n); err != nil {
			return err
		} else if n >= CodesPerUserHour {
			return ErrRateLimited
		}
		if err := db.QueryRow(ctx, countNumRequestsQ, lookup, since).Scan(&n); err != nil {
			return err
		} else if n >= CodesPerNumHour {
			return ErrRateLimited
		}
		if _, err := db.Exec(ctx, addRequestQ, addr.String(), lookup, now.UnixMilli()); err != nil {
			return err
		}
		if _, err := db.Exec(ctx, deletePendingQ, addr.String()); err != nil {
			return err
		}
		_, err := db.Exec(ctx, insertPendingQ, addr.String(), lookup, v.vault.Seal(number, addr.String()),
			v.codeHash(addr, code), now.UnixMilli(), now.Add(CodeLifetime).UnixMilli())
		return err
	})
	if errors.Is(err, ErrRateLimited) {
		return "", err
	} else if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return code, nil
}

// Verify checks code against addr's pending verification. On success the
// pending row is deleted (the code cannot be used again) and the verified
// number returned. A wrong code counts a try; after MaxTries the code is
// locked until a new one is requested.
func (v *Verifier) Verify(ctx context.Context, addr bridge.Address, code string) (string, error) {
	return v.verify(ctx, addr, code, nil)
}

// Confirm is Verify followed by linking the verified number to addr, in
// the same transaction: the code is used up only if the link is recorded.
// The store needs SetSecret.
func (v *Verifier) Confirm(ctx context.Context, addr bridge.Address, code string) (string, error) {
	if err := v.store.keyed(); err != nil {
		return "", err
	}
	return v.verify(ctx, addr, code, func(ctx context.Context, number string) error {
		return v.store.link(ctx, addr, number)
	})
}

func (v *Verifier) verify(ctx context.Context, addr bridge.Address, code string, then func(context.Context, string) error) (string, error) {
	db := v.store.db
	var lookup, hash string
	var sealed []byte
	var expires int64
	var tries int
	err := db.QueryRow(ctx, getPendingQ, addr.String()).Scan(&lookup, &sealed, &hash, &expires, &tries)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNoPendingCode
	} else if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	switch {
	case !v.store.now().Before(time.UnixMilli(expires)):
		_, _ = db.Exec(ctx, deletePendingQ, addr.String())
		return "", ErrCodeExpired
	case tries >= MaxTries:
		return "", ErrTooManyTries
	case !hmac.Equal([]byte(hash), []byte(v.codeHash(addr, code))):
		if _, err = db.Exec(ctx, addTryQ, addr.String()); err != nil {
			return "", fmt.Errorf("%w: %w", ErrDatabase, err)
		}
		if tries+1 >= MaxTries {
			return "", ErrTooManyTries
		}
		return "", fmt.Errorf("%w (%d tries left)", ErrWrongCode, MaxTries-tries-1)
	}
	number, err := v.vault.Open(sealed, addr.String())
	if err != nil {
		return "", err
	}
	err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
		res, err := db.Exec(ctx, deletePendingQ, addr.String())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoPendingCode // used concurrently: single-use
		}
		if then != nil {
			return then(ctx, number)
		}
		return nil
	})
	if errors.Is(err, ErrNoPendingCode) {
		return "", err
	} else if err != nil {
		return "", fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return number, nil
}

// Cancel drops addr's pending code (a code that could not be sent).
func (v *Verifier) Cancel(ctx context.Context, addr bridge.Address) error {
	_, err := v.store.db.Exec(ctx, deletePendingQ, addr.String())
	return err
}

// Purge deletes code-request records older than the rate-limit window
// (metadata kept no longer than needed).
func (v *Verifier) Purge(ctx context.Context) error {
	_, err := v.store.db.Exec(ctx, purgeRequestQ, v.store.now().Add(-rateWindow).UnixMilli())
	return err
}

func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}
