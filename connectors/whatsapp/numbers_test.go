package whatsapp

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// TestWrittenFormsReachOneChat: a number written or pasted any usual way
// reaches the same WhatsApp chat and contact as its E.164 form (every
// keyed hash is of the canonical form); a malformed one is refused with
// ErrInvalidNumber naming the problem, not the number.
func TestWrittenFormsReachOneChat(t *testing.T) {
	e := newEnv(t)
	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[contactNumber] = contactJID
	chat, contact, err := e.wa.OpenPhoneChat(e.ctx, bob, contactNumber, "")
	require.NoError(t, err)
	for _, written := range []string{
		"+1 (415) 555-0177", "+1.415.555.0177", "001 415 555 0177", "＋１ ４１５ ５５５ ０１７７",
		"\u202a+1 415-555-0177\u202c", "+1\u00a0415\u00a0555\u00a00177",
	} {
		got, who, err := e.wa.OpenPhoneChat(e.ctx, bob, written, "")
		require.NoError(t, err, "%q", written)
		require.Equal(t, chat, got, "%q", written)
		require.Equal(t, contact, who, "%q", written)
		chats, err := e.wa.ChatsReaching(e.ctx, written)
		require.NoError(t, err, "%q", written)
		require.Equal(t, []bridge.ChatID{chat}, chats, "%q", written)
		on, err := e.wa.Reaches(e.ctx, bob, written)
		require.NoError(t, err, "%q", written)
		require.True(t, on, "%q", written)
	}
	for written, problem := range map[string]error{
		"(415) 555-0177":    phone.ErrNotInternational,
		"+1 415 CALL ME":    phone.ErrLetters,
		"+1 415":            phone.ErrTooShort,
		"+1 415 555 0177 9": phone.ErrTooLong,
	} {
		_, _, err := e.wa.OpenPhoneChat(e.ctx, bob, written, "")
		require.ErrorIs(t, err, ErrInvalidNumber, "%q", written)
		require.ErrorIs(t, err, problem, "%q", written)
		require.NotContains(t, err.Error(), written)
		_, err = e.wa.ChatsReaching(e.ctx, written)
		require.ErrorIs(t, err, problem, "%q", written)
	}
}
