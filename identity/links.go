package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// ConsentLink records linking (true) and unlinking (false) a number.
const ConsentLink = "link"

// Link is one phone number a person verified and linked to their identity.
type Link struct {
	// Number is the E.164 number, decrypted for its owner only.
	Number string
	// Pseudonym is the contact pseudonym the number has on phone networks.
	Pseudonym string
	At        time.Time
}

// Route is a chat opened for a requester because of a link.
type Route struct {
	Requester bridge.Address
	Network   bridge.NetworkID
	Chat      bridge.ChatID
}

const (
	linkUpsertQ = `
		INSERT INTO sb_identity_link (number_lookup, owner, number_enc, pseudonym, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (number_lookup) DO UPDATE SET owner=excluded.owner, number_enc=excluded.number_enc,
			pseudonym=excluded.pseudonym, created_at=excluded.created_at`
	linkOwnerQ       = `SELECT owner FROM sb_identity_link WHERE number_lookup=$1`
	linkByPseudonymQ = `SELECT owner FROM sb_identity_link WHERE pseudonym=$1`
	linkRevealQ      = `SELECT number_lookup, number_enc FROM sb_identity_link WHERE pseudonym=$1`
	linksOfOwnerQ    = `SELECT number_lookup, number_enc, pseudonym, created_at FROM sb_identity_link WHERE owner=$1 ORDER BY created_at`
	linkDeleteQ      = `DELETE FROM sb_identity_link WHERE number_lookup=$1 AND owner=$2`
	routesOfNumberQ  = `SELECT requester, network, chat FROM sb_identity_route WHERE number_lookup=$1`
	routeDeleteQ     = `DELETE FROM sb_identity_route WHERE number_lookup=$1`
	routeGetQ        = `SELECT network, chat FROM sb_identity_route WHERE requester=$1 AND number_lookup=$2`
	routeUpsertQ     = `
		INSERT INTO sb_identity_route (requester, number_lookup, network, chat, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (requester, number_lookup) DO UPDATE SET network=excluded.network, chat=excluded.chat, created_at=excluded.created_at`
)

// SetSecret keys the store's number encryption, look-up hashes and
// pseudonyms from identity.secret. Call it before any link method.
func (s *Store) SetSecret(secret []byte) error {
	vault, err := NewVault(secret)
	if err != nil {
		return err
	}
	pseudo, err := NewPseudonyms(secret)
	if err != nil {
		return err
	}
	s.vault, s.pseudo = vault, pseudo
	return nil
}

// Vault returns the store's vault (nil before SetSecret).
func (s *Store) Vault() *Vault { return s.vault }

// Pseudonyms returns the store's pseudonym deriver (nil before SetSecret).
func (s *Store) Pseudonyms() *Pseudonyms { return s.pseudo }

func (s *Store) keyed() error {
	if s.vault == nil || s.pseudo == nil {
		return ErrNoSecret
	}
	return nil
}

// link records that owner verified number. A number links to one person:
// verifying it again from another account moves it there (whoever
// received the code holds the number now), and the previous owner's routes
// go with it. Runs inside the caller's transaction when there is one.
func (s *Store) link(ctx context.Context, owner bridge.Address, number string) error {
	lookup := s.vault.Lookup(number)
	now := s.now().UnixMilli()
	if _, err := s.db.Exec(ctx, routeDeleteQ, lookup); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, linkUpsertQ, lookup, owner.String(), s.vault.Seal(number, lookup),
		string(s.pseudo.Phone(number).ID), now); err != nil {
		return err
	}
	_, err := s.db.Exec(ctx, addConsentQ, owner.String(), ConsentLink, true, now)
	return err
}

// Unlink removes owner's link to number and every route derived from it,
// in one transaction. It returns the removed routes, and ErrNotLinked when
// owner had no such link.
func (s *Store) Unlink(ctx context.Context, owner bridge.Address, number string) ([]Route, error) {
	if err := s.keyed(); err != nil {
		return nil, err
	}
	lookup := s.vault.Lookup(number)
	var routes []Route
	err := s.db.DoTxn(ctx, nil, func(ctx context.Context) error {
		res, err := s.db.Exec(ctx, linkDeleteQ, lookup, owner.String())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotLinked
		}
		rows, err := s.db.Query(ctx, routesOfNumberQ, lookup)
		if err != nil {
			return err
		}
		for rows.Next() {
			var req, network, chat string
			if err = rows.Scan(&req, &network, &chat); err != nil {
				rows.Close()
				return err
			}
			addr, _ := bridge.ParseAddress(req)
			routes = append(routes, Route{Requester: addr, Network: bridge.NetworkID(network), Chat: bridge.ChatID(chat)})
		}
		rows.Close()
		if err = rows.Err(); err != nil {
			return err
		}
		if _, err = s.db.Exec(ctx, routeDeleteQ, lookup); err != nil {
			return err
		}
		_, err = s.db.Exec(ctx, addConsentQ, owner.String(), ConsentLink, false, s.now().UnixMilli())
		return err
	})
	if errors.Is(err, ErrNotLinked) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return routes, nil
}

// Links lists owner's linked numbers, oldest first.
func (s *Store) Links(ctx context.Context, owner bridge.Address) ([]Link, error) {
	if err := s.keyed(); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, linksOfOwnerQ, owner.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	defer rows.Close()
	var out []Link
	for rows.Next() {
		var lookup string
		var sealed []byte
		var l Link
		var at int64
		if err = rows.Scan(&lookup, &sealed, &l.Pseudonym, &at); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
		}
		if l.Number, err = s.vault.Open(sealed, lookup); err != nil {
			return nil, err
		}
		l.At = time.UnixMilli(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

// LinkedOwner returns the person who linked number, if anyone did.
func (s *Store) LinkedOwner(ctx context.Context, number string) (bridge.Address, bool, error) {
	if err := s.keyed(); err != nil {
		return bridge.Address{}, false, err
	}
	return s.ownerBy(ctx, linkOwnerQ, s.vault.Lookup(number))
}

func (s *Store) ownerBy(ctx context.Context, query, key string) (bridge.Address, bool, error) {
	var owner string
	err := s.db.QueryRow(ctx, query, key).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return bridge.Address{}, false, nil
	} else if err != nil {
		return bridge.Address{}, false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	addr, err := bridge.ParseAddress(owner)
	if err != nil {
		return bridge.Address{}, false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return addr, true, nil
}

// RevealedNumber returns the number behind a phone contact's pseudonym
// when that contact linked it and turned `reveal on`; otherwise ok is
// false and the number must stay hidden.
func (s *Store) RevealedNumber(ctx context.Context, pseudonym string) (number string, ok bool, err error) {
	if s.keyed() != nil || !IsPhonePseudonym(bridge.UserID(pseudonym)) {
		return "", false, nil
	}
	owner, linked, err := s.ownerBy(ctx, linkByPseudonymQ, pseudonym)
	if err != nil || !linked {
		return "", false, err
	}
	prefs, err := s.Prefs(ctx, owner)
	if err != nil || !prefs.Reveal {
		return "", false, err
	}
	var lookup string
	var sealed []byte
	if err = s.db.QueryRow(ctx, linkRevealQ, pseudonym).Scan(&lookup, &sealed); err != nil {
		return "", false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	number, err = s.vault.Open(sealed, lookup)
	return number, err == nil, err
}

// RouteFor returns the chat a requester's earlier `start` of number opened
// because of a link, if it still stands.
func (s *Store) RouteFor(ctx context.Context, requester bridge.Address, number string) (Route, bool, error) {
	if err := s.keyed(); err != nil {
		return Route{}, false, err
	}
	var network, chat string
	err := s.db.QueryRow(ctx, routeGetQ, requester.String(), s.vault.Lookup(number)).Scan(&network, &chat)
	if errors.Is(err, sql.ErrNoRows) {
		return Route{}, false, nil
	} else if err != nil {
		return Route{}, false, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return Route{Requester: requester, Network: bridge.NetworkID(network), Chat: bridge.ChatID(chat)}, true, nil
}

// SaveRoute records a chat opened for requester because number is linked;
// Unlink deletes it.
func (s *Store) SaveRoute(ctx context.Context, requester bridge.Address, number string, network bridge.NetworkID, chat bridge.ChatID) error {
	if err := s.keyed(); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, routeUpsertQ, requester.String(), s.vault.Lookup(number), string(network), string(chat), s.now().UnixMilli()); err != nil {
		return fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	return nil
}
