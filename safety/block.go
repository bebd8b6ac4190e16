package safety

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// contact is the person on the other side of a user's room.
type contact struct {
	conv   bridge.ConversationID
	leg    bridge.Leg
	person string
	// sender is the contact's ID on leg's network ("" when unknown).
	sender string
	// name is how admins and the user see them: a pseudonym, never a number.
	name string
}

// contactsOf returns the contacts of the conversation a Matrix room
// belongs to (its non-Matrix legs).
func (s *Service) contactsOf(ctx context.Context, room string) ([]contact, error) {
	if s.opts.Legs == nil {
		return nil, ErrNoContact
	}
	conv, legs, err := s.opts.Legs(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(room)})
	if errors.Is(err, bridge.ErrUnknownLeg) {
		return nil, ErrNoContact
	} else if err != nil {
		return nil, err
	}
	var out []contact
	for _, leg := range legs {
		if leg.Network == bridge.NetworkMatrix {
			continue
		}
		person, sender, ok, err := s.store.legContact(ctx, string(leg.Network), string(leg.Chat))
		if err != nil {
			return nil, err
		}
		if !ok && s.opts.Contact != nil {
			who, found, err := s.opts.Contact(ctx, leg)
			if err != nil {
				return nil, err
			}
			if found {
				if person, err = s.opts.People(ctx, bridge.Address{Network: leg.Network, ID: string(who.ID)}); err != nil {
					return nil, err
				}
				sender, ok = string(who.ID), true
			}
		}
		if ok {
			out = append(out, contact{conv: conv, leg: leg, person: person, sender: sender, name: fmt.Sprintf("%s on %s", sender, leg.Network)})
		}
	}
	if len(out) == 0 {
		return nil, ErrNoContact
	}
	return out, nil
}

// Block is the `block` command of user in room: the user stops receiving
// from the room's contact on every network that person's verified
// identity links. The contact is not told.
func (s *Service) Block(ctx context.Context, user, room string) string {
	contacts, err := s.contactsOf(ctx, room)
	if errors.Is(err, ErrNoContact) {
		return "block works in a bridged room whose contact the bridge knows; use it in the room of the chat you want to block."
	} else if err != nil {
		s.log.Warn().Err(err).Msg("block: contact lookup failed")
		return "Could not block right now; please try again."
	}
	blocker := matrixKey(user)
	now := s.now()
	var names []string
	for _, c := range contacts {
		keys, err := s.contactKeys(ctx, c)
		if err != nil {
			s.log.Warn().Err(err).Msg("block: person lookup failed")
			return "Could not block right now; please try again."
		}
		for _, key := range keys {
			if err = s.store.exec(ctx, insertBlockQuery, blocker, key, ms(now)); err != nil {
				s.log.Warn().Err(err).Msg("block: failed to save")
				return "Could not block right now; please try again."
			}
			s.mu.Lock()
			if s.blocks[blocker] == nil {
				s.blocks[blocker] = map[string]bool{}
			}
			s.blocks[blocker][key] = true
			s.mu.Unlock()
		}
		s.metrics.blocks.Inc()
		s.signal(ctx, c.person, sigBlocked, string(c.conv))
		s.decide(ctx, c.person, "block", user, "")
		s.evaluate(ctx, c.person)
		names = append(names, c.name)
	}
	return fmt.Sprintf("Blocked %s: you will no longer receive their messages, on any network their verified identity links. "+
		"They are not told. Messages already delivered stay.", strings.Join(names, ", "))
}

// Unblock is the `unblock` command of user in room: the room's contact
// reaches the user again, under every key they were blocked by.
func (s *Service) Unblock(ctx context.Context, user, room string) string {
	contacts, err := s.contactsOf(ctx, room)
	if errors.Is(err, ErrNoContact) {
		return "unblock works in a bridged room whose contact the bridge knows; use it in the room of the chat you blocked."
	} else if err != nil {
		s.log.Warn().Err(err).Msg("unblock: contact lookup failed")
		return "Could not unblock right now; please try again."
	}
	blocker := matrixKey(user)
	var names []string
	for _, c := range contacts {
		keys, err := s.contactKeys(ctx, c)
		if err != nil {
			s.log.Warn().Err(err).Msg("unblock: person lookup failed")
			return "Could not unblock right now; please try again."
		}
		was := false
		for _, key := range keys {
			if s.Blocked(blocker, key) {
				was = true
			}
			if err = s.store.exec(ctx, deleteBlockQuery, blocker, key); err != nil {
				s.log.Warn().Err(err).Msg("unblock: failed to save")
				return "Could not unblock right now; please try again."
			}
			s.mu.Lock()
			delete(s.blocks[blocker], key)
			if len(s.blocks[blocker]) == 0 {
				delete(s.blocks, blocker)
			}
			s.mu.Unlock()
		}
		if was {
			s.decide(ctx, c.person, "unblock", user, "")
			names = append(names, c.name)
		}
	}
	if len(names) == 0 {
		return "You have not blocked the contact in this room."
	}
	return fmt.Sprintf("Unblocked %s: their new messages reach you again. Messages sent while they were blocked are not delivered.",
		strings.Join(names, ", "))
}

// contactKeys returns every person key of a contact: the one recorded for
// its leg and all those of its address (see Options.Aliases).
func (s *Service) contactKeys(ctx context.Context, c contact) ([]string, error) {
	keys := []string{c.person}
	if c.sender == "" {
		return keys, nil
	}
	all, err := s.keysOf(ctx, bridge.Address{Network: c.leg.Network, ID: c.sender})
	return append(keys, all...), err
}
