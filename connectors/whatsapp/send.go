package whatsapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// MaxMediaSize is the largest attachment sent to WhatsApp (its limit for
// documents is 2 GB, but the bridge holds an attachment in memory).
const MaxMediaSize = 100 << 20

// ErrNotConnected means the chat's login is (re)connecting; the router
// retries.
var ErrNotConnected = errors.New("the WhatsApp account is not connected right now")

// ownID is the WhatsApp ID of a message the bridge sends for a delivery:
// stable across retries of the delivery (so WhatsApp drops a resend) and
// recognisable as the bridge's own (see isOwnID), which WhatsApp needs to
// quote, edit, react to and revoke it.
func (c *Connector) ownID(parts ...string) string {
	a := mac(c.keys.msgID, parts...)[:6]
	tag := mac(c.keys.msgID, "own", string(a))[:3]
	return "3EB0" + strings.ToUpper(hex.EncodeToString(a)+hex.EncodeToString(tag))
}

// isOwnID reports whether a message ID came from ownID.
func (c *Connector) isOwnID(msgID string) bool {
	raw, ok := strings.CutPrefix(msgID, "3EB0")
	if !ok || len(raw) != 18 {
		return false
	}
	b, err := hex.DecodeString(raw)
	if err != nil {
		return false
	}
	return hmac.Equal(b[6:], mac(c.keys.msgID, "own", string(b[:6]))[:3])
}

// target loads a delivery's chat and the login that carries it.
func (c *Connector) target(ctx context.Context, chat bridge.ChatID) (*chatRow, *login, error) {
	row, err := c.loadChat(ctx, chat)
	if errors.Is(err, ErrUnknownChat) || errors.Is(err, ErrStoredJID) {
		return nil, nil, bridge.Permanent(err)
	} else if err != nil {
		return nil, nil, err
	}
	l := c.loginOf(row.account)
	if !l.usable() {
		return nil, nil, bridge.Permanent(ErrNotLoggedIn)
	}
	if !l.client.IsConnected() {
		return nil, nil, ErrNotConnected
	}
	return row, l, nil
}

// contentTarget is target for what carries content to the contact
// (messages, media, edits, reactions): refused while a relay group's
// contact is out of it, since it would reach nobody. Deletes and receipts
// still go.
func (c *Connector) contentTarget(ctx context.Context, chat bridge.ChatID) (*chatRow, *login, error) {
	row, l, err := c.target(ctx, chat)
	if err == nil && row.contactLeft {
		return nil, nil, bridge.Permanent(ErrContactLeftGroup)
	}
	return row, l, err
}

// prefix is what goes before a relayed message, or a message from a guest
// (someone other than the portal's owner) sent through the owner's own
// login: the sender's display name, never a number.
func prefix(row *chatRow, sender bridge.Sender) string {
	if row.account != RelayAccount && !sender.Guest {
		return ""
	}
	name := strings.TrimSpace(sender.DisplayName)
	if name == "" {
		name = "Someone"
	}
	if phone.Contains(name) {
		name = phone.Redact(name)
	}
	return name + ": "
}

// participant is the sender of a message WhatsApp needs to reference it:
// the account itself for its own messages, the contact in one-to-one
// chats, the remembered sender in groups (cached, else stored; zero when
// unknown).
func (c *Connector) participant(ctx context.Context, l *login, row *chatRow, msgID string) (types.JID, error) {
	if c.isOwnID(msgID) {
		return l.jid.ToNonAD(), nil
	}
	if j, ok := c.senders.get(l.account, msgID); ok {
		return j, nil
	}
	if !row.group {
		return row.jid, nil
	}
	j, err := c.loadSender(ctx, row.id, msgID)
	if err != nil || j.IsEmpty() {
		return types.EmptyJID, err
	}
	c.senders.put(l.account, msgID, j)
	return j, nil
}

func (c *Connector) outgoing(ctx context.Context, l *login, row *chatRow, d *bridge.Delivery) (outgoing, error) {
	o := outgoing{Prefix: prefix(row, d.Event.Sender), Expiration: time.Duration(row.timer) * time.Millisecond}
	if d.ReplyTo != "" {
		p, err := c.participant(ctx, l, row, string(d.ReplyTo))
		if err != nil {
			return o, err
		}
		if !p.IsEmpty() {
			o.ReplyTo, o.ReplyParticipant = string(d.ReplyTo), p.String()
		}
	}
	return o, nil
}

func (c *Connector) send(ctx context.Context, l *login, row *chatRow, d *bridge.Delivery, msg *waE2E.Message) (bridge.RemoteID, error) {
	msgID := c.ownID(row.account, string(row.id), string(d.Message), string(d.ID))
	_, err := l.client.SendMessage(ctx, row.jid, msg, whatsmeow.SendRequestExtra{ID: msgID})
	if err != nil {
		c.metrics.messages.WithLabelValues("out", "error").Inc()
		return "", classify(err)
	}
	c.metrics.messages.WithLabelValues("out", "sent").Inc()
	return bridge.RemoteID(msgID), nil
}

// classify maps whatsmeow errors to the router's retry semantics. The
// message is scrubbed: whatsmeow's errors can name JIDs, and the router
// logs delivery errors.
func classify(err error) error {
	if err == nil {
		return nil
	}
	err = scrubErr(err)
	switch {
	case errors.Is(err, whatsmeow.ErrNotLoggedIn):
		return bridge.Permanent(fmt.Errorf("%w: %w", ErrNotLoggedIn, err))
	case errors.Is(err, whatsmeow.ErrIQForbidden), errors.Is(err, whatsmeow.ErrIQNotAuthorized),
		errors.Is(err, whatsmeow.ErrNotInGroup), errors.Is(err, whatsmeow.ErrRecipientADJID):
		return bridge.Permanent(err)
	case errors.Is(err, whatsmeow.ErrNotConnected):
		return fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return err
}

// SendMessage implements bridge.Connector: text, notices and emotes, with
// WhatsApp formatting, as a reply when the router translated one.
func (c *Connector) SendMessage(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	if d.Event == nil || d.Event.Content == nil {
		return "", bridge.Permanent(errors.New("whatsapp: delivery has no content"))
	}
	row, l, err := c.contentTarget(ctx, d.Chat)
	if err != nil {
		return "", err
	}
	ct := d.Event.Content
	if ct.Media != nil && ct.Body == "" {
		// A media message the router could not forward as media.
		ct = &bridge.Content{Type: bridge.MsgText, Body: ct.Media.FileName}
	}
	o, err := c.outgoing(ctx, l, row, d)
	if err != nil {
		return "", err
	}
	switch {
	case ct.Type == bridge.MsgLocation && ct.Location != nil:
		return c.send(ctx, l, row, d, buildLocation(ct.Location, o))
	case ct.Type == bridge.MsgPoll && ct.Poll != nil:
		return c.sendPoll(ctx, l, row, d, o)
	case ct.Type == bridge.MsgPollVote && ct.Poll != nil:
		return c.sendVote(ctx, l, row, d, o)
	}
	return c.send(ctx, l, row, d, buildText(ct, o))
}

// SendMedia implements bridge.MediaSender: the attachment is fetched from
// its source connector, encrypted and uploaded by whatsmeow, and sent as
// an image, video, audio, voice note, sticker or document.
func (c *Connector) SendMedia(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	row, l, err := c.contentTarget(ctx, d.Chat)
	if err != nil {
		return "", err
	}
	o, err := c.outgoing(ctx, l, row, d)
	if err != nil {
		return "", err
	}
	data, err := d.ReadMedia(ctx, MaxMediaSize)
	if err != nil {
		return "", err
	}
	ct := *d.Event.Content
	media := *ct.Media
	ct.Media = &media
	if media.MimeType == "" {
		media.MimeType = http.DetectContentType(data)
	}
	fitMedia(&ct, data)
	up, err := l.client.Upload(ctx, data, mediaType(ct.Type))
	clear(data)
	if err != nil {
		return "", classify(fmt.Errorf("whatsapp: upload: %w", err))
	}
	return c.send(ctx, l, row, d, buildMedia(&ct, up, o))
}

// fitMedia makes an attachment what WhatsApp can show as its type: a
// voice note must be Ogg Opus (anything else goes as a plain audio file),
// a sticker WebP (anything else goes as an image).
func fitMedia(ct *bridge.Content, data []byte) {
	switch ct.Type {
	case bridge.MsgVoice:
		if isOggOpus(data) {
			ct.Media.MimeType = "audio/ogg; codecs=opus"
		} else {
			ct.Type = bridge.MsgAudio
		}
	case bridge.MsgSticker:
		if isWebP(data) {
			ct.Media.MimeType = "image/webp"
		} else {
			ct.Type = bridge.MsgImage
		}
	}
}

// SendEdit implements bridge.EditSender. WhatsApp lets an account edit
// only its own messages.
func (c *Connector) SendEdit(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	row, l, err := c.contentTarget(ctx, d.Chat)
	if err != nil {
		return "", err
	}
	if !c.isOwnID(string(d.Target)) {
		return "", bridge.Permanent(errors.New("whatsapp: only messages the bridge sent can be edited"))
	}
	content := buildText(d.Event.Content, outgoing{Prefix: prefix(row, d.Event.Sender)})
	return c.send(ctx, l, row, d, l.client.BuildEdit(row.jid, types.MessageID(d.Target), content))
}

// SendReaction implements bridge.ReactionSender.
func (c *Connector) SendReaction(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	row, l, err := c.contentTarget(ctx, d.Chat)
	if err != nil {
		return "", err
	}
	sender, err := c.participant(ctx, l, row, string(d.Target))
	if err != nil {
		return "", err
	}
	if sender.IsEmpty() {
		return "", bridge.Permanent(errors.New("whatsapp: the reacted-to message's sender is no longer known"))
	}
	remote, err := c.send(ctx, l, row, d, l.client.BuildReaction(row.jid, sender, types.MessageID(d.Target), d.Event.Reaction))
	if err == nil {
		c.rememberOwnReaction(ctx, row.id, string(remote), reactionOf{target: string(d.Target), sender: sender}, d.Expires)
	}
	return remote, err
}

// SendDelete implements bridge.DeleteSender: a message the bridge sent is
// revoked for everyone; a reaction it sent is removed.
func (c *Connector) SendDelete(ctx context.Context, d *bridge.Delivery) error {
	row, l, err := c.target(ctx, d.Chat)
	if err != nil {
		return err
	}
	return c.revoke(ctx, l, row, string(d.Target), d)
}

func (c *Connector) revoke(ctx context.Context, l *login, row *chatRow, target string, d *bridge.Delivery) error {
	var msg *waE2E.Message
	r, reaction, err := c.ownReaction(ctx, row.id, target)
	if err != nil {
		return err
	}
	if reaction {
		msg = l.client.BuildReaction(row.jid, r.sender, types.MessageID(r.target), "")
	} else if c.isOwnID(target) {
		msg = l.client.BuildRevoke(row.jid, l.jid.ToNonAD(), types.MessageID(target))
	} else {
		return bridge.Permanent(errors.New("whatsapp: only messages the bridge sent can be deleted for everyone"))
	}
	id := c.ownID(row.account, string(row.id), "revoke", target)
	if d != nil {
		id = c.ownID(row.account, string(row.id), string(d.Message), string(d.ID))
	}
	if _, err = l.client.SendMessage(ctx, row.jid, msg, whatsmeow.SendRequestExtra{ID: id}); err != nil {
		return classify(err)
	}
	if reaction {
		c.forgetOwnReaction(ctx, row.id, target)
	}
	return nil
}

// ExpireMessage implements bridge.MessageExpirer: when retention ends, a
// message the bridge sent is revoked for everyone. Messages the contact
// sent cannot be deleted from their phone by the bridge; WhatsApp's chat
// timer (set with SetDisappearingTimer) removes those.
func (c *Connector) ExpireMessage(ctx context.Context, chat bridge.ChatID, message bridge.RemoteID) error {
	if !c.isOwnID(string(message)) {
		if _, ok, err := c.ownReaction(ctx, chat, string(message)); err != nil {
			return err
		} else if !ok {
			return nil
		}
	}
	row, l, err := c.target(ctx, chat)
	if err != nil {
		return err
	}
	return c.revoke(ctx, l, row, string(message), nil)
}

// SendReadReceipt implements bridge.ReadReceiptSender.
func (c *Connector) SendReadReceipt(ctx context.Context, d *bridge.Delivery) error {
	row, l, err := c.target(ctx, d.Chat)
	if err != nil {
		return err
	}
	if c.isOwnID(string(d.Target)) {
		return nil // the account's own message: nothing to mark
	}
	sender, err := c.participant(ctx, l, row, string(d.Target))
	if err != nil {
		return err
	}
	return classify(l.client.MarkRead(ctx, []types.MessageID{types.MessageID(d.Target)}, c.now(), row.jid, sender))
}

// SendTyping implements bridge.TypingSender.
func (c *Connector) SendTyping(ctx context.Context, chat bridge.ChatID, _ bridge.Sender, typing bool) error {
	row, l, err := c.target(ctx, chat)
	if err != nil {
		return err
	}
	state := types.ChatPresencePaused
	if typing {
		state = types.ChatPresenceComposing
	}
	return l.client.SendChatPresence(ctx, row.jid, state, types.ChatPresenceMediaText)
}

// DownloadMedia implements bridge.MediaDownloader: the attachment is
// downloaded and decrypted through the account that received it.
func (c *Connector) DownloadMedia(ctx context.Context, media *bridge.Media) (io.ReadCloser, error) {
	if strings.HasPrefix(media.Ref, avatarRefPrefix) {
		return c.downloadAvatar(ctx, media.Ref) // groupinfo.go
	}
	ref, err := decodeMediaRef(media.Ref)
	if err != nil {
		return nil, bridge.Permanent(err)
	}
	l := c.loginOf(ref.Account)
	if !l.usable() {
		return nil, bridge.Permanent(ErrNotLoggedIn)
	}
	data, err := l.client.Download(ctx, ref.downloadable())
	if errors.Is(err, whatsmeow.ErrFileLengthMismatch) && data != nil {
		// The length the sender's client declared (FileLength; absent
		// declares 0) is not trusted: the real one counts, and the
		// destination's ReadMedia applies its limit to it. whatsmeow
		// authenticated the download (MAC, encrypted SHA-256) but skips
		// the plaintext SHA-256 after a length warning, so check it here.
		err = nil
		if len(ref.SHA256) == sha256.Size && sha256.Sum256(data) != [sha256.Size]byte(ref.SHA256) {
			err = whatsmeow.ErrInvalidMediaSHA256
		}
	}
	if errors.Is(err, whatsmeow.ErrInvalidMediaSHA256) {
		clear(data)
		return nil, bridge.Permanent(fmt.Errorf("whatsapp: the attachment does not match its hash: %w", err))
	}
	if err != nil {
		if errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith404) || errors.Is(err, whatsmeow.ErrMediaDownloadFailedWith410) {
			return nil, bridge.Permanent(fmt.Errorf("whatsapp: the attachment expired on WhatsApp's servers: %w", err))
		}
		return nil, classify(err)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Timers WhatsApp offers for a chat.
var waTimers = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 90 * 24 * time.Hour}

// WhatsAppTimer is the chat timer WhatsApp can show for a conversation
// timer: the longest of 24h, 7d and 90d that is not longer (so WhatsApp
// deletes no later than the conversation), or 24h for shorter timers (the
// bridge revokes its own messages at their deadline anyway); 0 is off.
func WhatsAppTimer(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	out := waTimers[0]
	for _, t := range waTimers {
		if t <= d {
			out = t
		}
	}
	return out
}

// SetDisappearingTimer implements bridge.TimerSetter: the WhatsApp chat's
// timer becomes WhatsAppTimer(timer). Like the Matrix connector's room
// state, a timer the bridge set is not reported back as the leg's own
// timer (that would ratchet: a conversation could never lengthen its
// timer again); only timers WhatsApp users set are. In a group whose
// settings only admins may change, a non-admin account gets
// ErrNoTimerPermission.
func (c *Connector) SetDisappearingTimer(ctx context.Context, chat bridge.ChatID, timer time.Duration) error {
	row, l, err := c.target(ctx, chat)
	if err != nil {
		return err
	}
	wa := WhatsAppTimer(timer)
	if row.timer == wa.Milliseconds() {
		return nil
	}
	if err = l.client.SetDisappearingTimer(ctx, row.jid, wa, c.now()); err != nil {
		if errors.Is(err, whatsmeow.ErrIQForbidden) || errors.Is(err, whatsmeow.ErrIQNotAuthorized) {
			return bridge.Permanent(fmt.Errorf("%w: %w", ErrNoTimerPermission, err))
		}
		return classify(err)
	}
	if _, err = c.db.Exec(ctx, chatTimerQuery, chat, wa.Milliseconds()); err != nil {
		return fmt.Errorf("%w: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// reactionOf is a reaction the bridge sent, kept in memory so deleting it
// can send WhatsApp's "remove reaction".
type reactionOf struct {
	target string
	sender types.JID
}

type reactionCache struct {
	mu    sync.Mutex
	order []string
	m     map[string]reactionOf
}

func (r *reactionCache) put(id string, v reactionOf) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]reactionOf{}
	}
	r.m[id] = v
	r.order = append(r.order, id)
	for len(r.order) > 4096 {
		delete(r.m, r.order[0])
		r.order = r.order[1:]
	}
}

func (r *reactionCache) del(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, id)
}

func (r *reactionCache) get(id string) (reactionOf, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[id]
	return v, ok
}
