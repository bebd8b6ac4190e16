package identity

import (
	"context"
	"fmt"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// PersonKey returns a stable key for the person behind an address, the same
// for every address their verified identity links: a Matrix user and the
// phone contact (on SMS or WhatsApp, by pseudonym) they linked get one key.
// Unlinked phone contacts are keyed by pseudonym, so one number is one
// person on every phone network. Keys hold no phone number.
func (s *Store) PersonKey(ctx context.Context, addr bridge.Address) (string, error) {
	if !IsPhonePseudonym(bridge.UserID(addr.ID)) {
		return addr.String(), nil
	}
	if s.keyed() == nil {
		owner, ok, err := s.ownerBy(ctx, linkByPseudonymQ, addr.ID)
		if err != nil {
			return "", err
		} else if ok {
			return owner.String(), nil
		}
	}
	return "phone:" + addr.ID, nil
}

const linksOfOwnerPseudonymsQ = `SELECT pseudonym FROM sb_identity_link WHERE owner=$1`

// PersonKeys returns every key the person behind addr is known under, their
// PersonKey first: a phone contact's own key ("phone:<pseudonym>") and, once
// linked, the identity's; a Matrix user's key and the keys of the numbers
// they linked. A block recorded under all of them and checked against all
// of them holds when the person links or unlinks a number later.
func (s *Store) PersonKeys(ctx context.Context, addr bridge.Address) ([]string, error) {
	primary, err := s.PersonKey(ctx, addr)
	if err != nil {
		return nil, err
	}
	keys := []string{primary}
	add := func(k string) {
		for _, have := range keys {
			if have == k {
				return
			}
		}
		keys = append(keys, k)
	}
	if IsPhonePseudonym(bridge.UserID(addr.ID)) {
		add("phone:" + addr.ID)
		owner, err := bridge.ParseAddress(primary)
		if err != nil || owner.Network == "phone" {
			return keys, nil
		}
		addr = owner
	}
	if s.keyed() != nil {
		return keys, nil
	}
	rows, err := s.db.Query(ctx, linksOfOwnerPseudonymsQ, addr.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err = rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDatabase, err)
		}
		add("phone:" + p)
	}
	return keys, rows.Err()
}
