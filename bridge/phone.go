package bridge

import "context"

// Optional capabilities of connectors that reach phone numbers (SMS,
// WhatsApp). `start +N` (the routing in the Matrix connector's starter)
// finds them by type assertion on the registered connectors, like the
// capabilities in connector.go. Numbers are E.164 (phone.Normalize) and
// never shown or logged.

// PhoneChatOpener is a connector that can reach phone numbers; `start +N`
// routes to one of them.
type PhoneChatOpener interface {
	Connector
	// OpenPhoneChat returns the chat on the connector's network through
	// which conversation conv (not created yet; see
	// Router.CreateConversationWithID) reaches an E.164 number for owner (a
	// Matrix user ID), and the contact as a Sender whose DisplayName is
	// never the number.
	OpenPhoneChat(ctx context.Context, owner string, phone string, conv ConversationID) (ChatID, Sender, error)
}

// PhoneChatLister is a PhoneChatOpener that can list the chats it already
// has with a number, so `start` returns to an existing conversation.
type PhoneChatLister interface {
	PhoneChatOpener
	ChatsReaching(ctx context.Context, phone string) ([]ChatID, error)
}

// PhoneReacher is a PhoneChatOpener that can tell, before opening a chat,
// whether a number is reachable on its network for owner (WhatsApp:
// IsOnWhatsApp through the owner's login or the relay account). Routing
// skips a PhoneReacher that says no.
type PhoneReacher interface {
	PhoneChatOpener
	Reaches(ctx context.Context, owner string, phone string) (bool, error)
}

// PhoneGroupOpener is a PhoneChatOpener that can open a chat of its own
// for a conversation when the one chat OpenPhoneChat has for a number
// already belongs to another user's conversation (WhatsApp's relay account:
// one 1:1 chat per contact, so a second user gets a group with the
// contact). Rules:
//   - the starter calls it only after OpenPhoneChat returned a chat that is
//     in another user's conversation; it returns a chat no conversation
//     holds yet, which ChatsReaching lists for phone from then on;
//   - name is the chat's name as the contact sees it; it never holds a
//     number, and the opener may shorten it to its network's limit;
//   - on error nothing is recorded (and whatever the network created is
//     undone), and the error text is shown to the user.
type PhoneGroupOpener interface {
	PhoneChatOpener
	OpenPhoneGroup(ctx context.Context, owner string, phone string, conv ConversationID, name string) (ChatID, Sender, error)
}
