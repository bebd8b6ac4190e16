package bridge

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
)

// NetworkID names a network (and the connector that serves it).
type NetworkID string

// The networks switchboard knows. Connectors for tests may use others.
const (
	NetworkMatrix   NetworkID = "matrix"
	NetworkWhatsApp NetworkID = "whatsapp"
	NetworkSMS      NetworkID = "sms"
)

// ConversationID is the core's opaque ID of one logical chat.
type ConversationID string

// MessageID is the core's opaque ID of one logical message, shared by all of
// its copies on the legs of a conversation.
type MessageID string

// ChatID is a connector's opaque ID of a chat on its network. Each connector
// makes and parses its own (for example a Matrix room ID); the core treats it
// as an opaque string.
type ChatID string

// RemoteID is a connector's opaque ID of one message (or reaction) on its
// network, such as a Matrix event ID or a Twilio MessageSid.
type RemoteID string

// UserID is a connector's opaque ID of a participant on its network.
type UserID string

// DeliveryID names one queued delivery. Connectors may use it as an
// idempotency key (a Matrix transaction ID, say) so that a redelivery after a
// crash is recognised by the network.
type DeliveryID string

// Leg is one network's chat in a conversation.
type Leg struct {
	Network NetworkID `json:"network"`
	Chat    ChatID    `json:"chat"`
}

func (l Leg) String() string { return string(l.Network) + "/" + string(l.Chat) }

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newID(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// NewConversationID returns a fresh random conversation ID.
func NewConversationID() ConversationID { return ConversationID(newID("c_")) }

// NewMessageID returns a fresh random message ID.
func NewMessageID() MessageID { return MessageID(newID("m_")) }

// Address is a person's address on one network, written
// "network:identifier", e.g. "matrix:@alice:example.org" or
// "sms:+15551234567".
type Address struct {
	Network NetworkID
	ID      string
}

func (a Address) String() string { return string(a.Network) + ":" + a.ID }

// ParseAddress parses "network:identifier". It checks the shape only;
// connectors validate identifiers of their own network.
func ParseAddress(s string) (Address, error) {
	network, id, ok := strings.Cut(s, ":")
	if !ok || network == "" || id == "" {
		return Address{}, fmt.Errorf("%w: %q is not network:identifier", ErrInvalidAddress, s)
	}
	for _, r := range network {
		if r < 'a' || r > 'z' {
			return Address{}, fmt.Errorf("%w: network name %q must be lower-case letters", ErrInvalidAddress, network)
		}
	}
	return Address{Network: NetworkID(network), ID: id}, nil
}
