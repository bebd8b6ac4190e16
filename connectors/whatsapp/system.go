package whatsapp

import (
	"context"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/rs/zerolog"
	"github.com/switchboard-bridge/switchboard/bridge"
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
	if err := readNumber(&number); err != nil {
		return err
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

// undeliverableText answers a contact whose message reaches nobody on the
// bridge (a stranger writing to the relay account).
const undeliverableText = "Automatic reply: this WhatsApp account relays conversations that people on a Matrix bridge start. " +
	"Nobody there has a conversation with you, so your message was not delivered, and it was not kept."

// tellUndeliverable tells a one-to-one chat's contact, at most once an
// hour per chat, that their message reached nobody. The reply is not
// stored or logged; a failure to send it is logged without the chat's JID.
func (c *Connector) tellUndeliverable(ctx context.Context, l *login, chat bridge.ChatID) {
	now := c.now()
	c.toldMu.Lock()
	if at, ok := c.toldUndeliverable[chat]; ok && now.Sub(at) < time.Hour {
		c.toldMu.Unlock()
		return
	}
	if c.toldUndeliverable == nil || len(c.toldUndeliverable) > 10000 {
		c.toldUndeliverable = map[bridge.ChatID]time.Time{}
	}
	c.toldUndeliverable[chat] = now
	c.toldMu.Unlock()

	log := zerolog.Ctx(ctx)
	row, err := c.loadChat(ctx, chat)
	if err != nil {
		log.Warn().Err(err).Msg("Could not load a WhatsApp chat to tell its contact their message was not delivered")
		return
	}
	if _, err = l.client.SendMessage(ctx, row.jid, &waE2E.Message{Conversation: proto.String(undeliverableText)}); err != nil {
		c.metrics.messages.WithLabelValues("out", "error").Inc()
		log.Warn().Err(scrubErr(err)).Msg("Could not tell a WhatsApp contact their message was not delivered")
		return
	}
	c.metrics.messages.WithLabelValues("out", "sent").Inc()
}
