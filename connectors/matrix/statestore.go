package matrix

import (
	"context"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// stateStore is mautrix's memory state store made safe to share between
// the appservice transaction handler, the crypto /sync loop and the
// senders. The memory store keeps the member content pointer it is given
// (often an event's own content) and SetMembership later changes that
// struct in place, racing with whoever reads the event or a member it
// returned. Here every member is stored as a private copy and a membership
// change stores a new copy instead of editing the old one.
type stateStore struct {
	*mautrix.MemoryStateStore
}

var _ appservice.StateStore = stateStore{}

func newStateStore() stateStore {
	return stateStore{mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)}
}

// SetMember stores a copy of member.
func (s stateStore) SetMember(ctx context.Context, room id.RoomID, user id.UserID, member *event.MemberEventContent) error {
	content := *member
	return s.MemoryStateStore.SetMember(ctx, room, user, &content)
}

// SetMembership stores a new member with the membership changed, leaving
// the struct earlier readers got untouched.
func (s stateStore) SetMembership(ctx context.Context, room id.RoomID, user id.UserID, membership event.Membership) error {
	var content event.MemberEventContent
	if current, err := s.MemoryStateStore.TryGetMember(ctx, room, user); err == nil && current != nil {
		content = *current
	}
	content.Membership = membership
	return s.MemoryStateStore.SetMember(ctx, room, user, &content)
}
