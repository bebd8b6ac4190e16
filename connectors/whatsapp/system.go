package whatsapp

import (
	"context"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/identity"
)

// CodeSender returns the identity.CodeReacher that sends verification codes
// from the bridge-owned relay account (never from a user's own WhatsApp).
func (c *Connector) CodeSender() identity.CodeReacher { return relayCodes{c} }

// relayCodes sends system texts through the relay account.
type relayCodes struct{ c *Connector }

var _ identity.CodeReacher = relayCodes{}

func (r relayCodes) Network() bridge.NetworkID { return bridge.NetworkWhatsApp }

// Reaches reports whether the relay account can reach number.
func (r relayCodes) Reaches(ctx context.Context, _ string, number string) (bool, error) {
	if l := r.c.loginOf(RelayAccount); l == nil || !l.usable() {
		return false, nil
	}
	return r.c.Reaches(ctx, "", number)
}

// SendCode sends text to number from the relay account, outside any chat:
// it is not stored or logged.
func (r relayCodes) SendCode(ctx context.Context, number, text string) error {
	if err := config.CheckE164(number); err != nil {
		return ErrInvalidNumber
	}
	l := r.c.loginOf(RelayAccount)
	if l == nil || !l.usable() {
		return ErrNotLoggedIn
	}
	if !l.client.IsConnected() {
		return ErrNotConnected
	}
	resp, err := l.client.IsOnWhatsApp(ctx, []string{number})
	if err != nil {
		return classify(err)
	}
	if len(resp) == 0 || !resp[0].IsIn || resp[0].JID.IsEmpty() {
		return ErrNotOnWhatsApp
	}
	if _, err = l.client.SendMessage(ctx, resp[0].JID, &waE2E.Message{Conversation: proto.String(text)}); err != nil {
		r.c.metrics.messages.WithLabelValues("out", "error").Inc()
		return classify(err)
	}
	r.c.metrics.messages.WithLabelValues("out", "sent").Inc()
	r.c.log.Debug().Msg("Sent a system WhatsApp message")
	return nil
}
