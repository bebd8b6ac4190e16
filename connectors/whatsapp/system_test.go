package whatsapp

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCodeSender: verification codes go only from the relay account, to
// numbers on WhatsApp; without a relay WhatsApp does not offer to send.
func TestCodeSender(t *testing.T) {
	e := newEnv(t)
	codes := e.wa.CodeSender()
	own := e.login(alice, aliceJID)
	own.onWhatsApp[contactNumber] = contactJID
	ok, err := codes.Reaches(e.ctx, alice, contactNumber)
	require.NoError(t, err)
	require.False(t, ok, "a user's own login never sends bridge codes")
	require.ErrorIs(t, codes.SendCode(e.ctx, contactNumber, "code 123456"), ErrNotLoggedIn)

	relay := e.login(RelayAccount, relayJID)
	relay.onWhatsApp[contactNumber] = contactJID
	ok, err = codes.Reaches(e.ctx, alice, contactNumber)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, codes.SendCode(e.ctx, contactNumber, "code 123456"))
	sent := relay.waitSent(1)
	require.Equal(t, contactJID, sent[0].to)
	require.Equal(t, "code 123456", sent[0].msg.GetConversation())
	require.Empty(t, own.sentMessages())
	require.ErrorIs(t, codes.SendCode(e.ctx, otherNumber, "code 123456"), ErrNotOnWhatsApp)
	require.NotContains(t, e.logs.String(), "123456", "codes are not logged")
}
