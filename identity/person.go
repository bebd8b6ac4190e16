package identity

import (
	"context"

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
