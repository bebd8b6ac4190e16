package whatsapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Polls. WhatsApp names a poll's options in votes by the SHA-256 of their
// text, and encrypts each vote with the poll's message secret (which
// whatsmeow keeps, sealed, in its store). The bridge crosses options by
// their index, so for every poll it sees or sends it keeps the list of
// option hashes (sealed, sb_whatsapp_poll) — never the texts.
const (
	upsertPollQuery = `
		INSERT INTO sb_whatsapp_poll (chat_id, poll_id, options_enc, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (chat_id, poll_id) DO UPDATE SET options_enc=excluded.options_enc, created_at=excluded.created_at`
	pollQuery               = `SELECT options_enc FROM sb_whatsapp_poll WHERE chat_id=$1 AND poll_id=$2`
	prunePollsQuery         = `DELETE FROM sb_whatsapp_poll WHERE created_at < $1`
	deleteAccountPollsQuery = `
		DELETE FROM sb_whatsapp_poll WHERE chat_id IN (SELECT chat_id FROM sb_whatsapp_chat WHERE account=$1)`
)

// maxPollOptions is the most options a WhatsApp poll has; a larger poll
// from another network goes out as text.
const maxPollOptions = 12

func pollAD(chat bridge.ChatID, pollID string) string {
	return "poll\x00" + string(chat) + "\x00" + pollID
}

// optionHashes are the SHA-256 hashes WhatsApp votes name options by.
func optionHashes(options []string) [][]byte {
	out := make([][]byte, len(options))
	for i, o := range options {
		h := sha256.Sum256([]byte(o))
		out[i] = h[:]
	}
	return out
}

// storePoll records a poll's option hashes.
func (c *Connector) storePoll(ctx context.Context, chat bridge.ChatID, pollID string, hashes [][]byte) error {
	parts := make([]string, len(hashes))
	for i, h := range hashes {
		parts[i] = hex.EncodeToString(h)
	}
	enc := c.keys.seal(strings.Join(parts, ","), pollAD(chat, pollID))
	if _, err := c.db.Exec(ctx, upsertPollQuery, chat, pollID, enc, c.now().UnixMilli()); err != nil {
		return fmt.Errorf("%w: record whatsapp poll: %w", bridge.ErrDatabase, err)
	}
	return nil
}

// loadPoll returns a poll's option hashes, or nil when the poll is not
// known (never seen, or its metadata expired).
func (c *Connector) loadPoll(ctx context.Context, chat bridge.ChatID, pollID string) ([][]byte, error) {
	var enc string
	err := c.db.QueryRow(ctx, pollQuery, chat, pollID).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w: load whatsapp poll: %w", bridge.ErrDatabase, err)
	}
	plain, err := c.keys.open(enc, pollAD(chat, pollID))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPollUnreadable, err)
	}
	var out [][]byte
	for _, p := range strings.Split(plain, ",") {
		h, err := hex.DecodeString(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPollUnreadable, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// pollContent is the normalized form of a WhatsApp poll.
func pollContent(m *waE2E.PollCreationMessage) *bridge.Content {
	p := &bridge.Poll{Question: m.GetName(), MaxSelections: int(m.GetSelectableOptionsCount())}
	for _, o := range m.GetOptions() {
		p.Options = append(p.Options, o.GetOptionName())
	}
	if p.MaxSelections == 0 && len(p.Options) > 1 {
		// WhatsApp's 0 means "any number of options".
		p.MaxSelections = len(p.Options)
	}
	c := &bridge.Content{Type: bridge.MsgPoll, Poll: p}
	c.Body = c.PlainText()
	return c
}

// pollCreation is the poll a message carries (any of WhatsApp's versions).
func pollCreation(msg *waE2E.Message) *waE2E.PollCreationMessage {
	for _, p := range []*waE2E.PollCreationMessage{msg.GetPollCreationMessage(), msg.GetPollCreationMessageV2(), msg.GetPollCreationMessageV3()} {
		if p != nil {
			return p
		}
	}
	return nil
}

// resolveVote decrypts a contact's vote and turns the option hashes it
// names into option indexes. ok is false when the vote cannot be read
// (its poll's secret or options are unknown to the bridge): it is then
// not bridged.
func (c *Connector) resolveVote(ctx context.Context, l *login, chat bridge.ChatID, evt *events.Message, in *incoming) (bool, error) {
	log := zerolog.Ctx(ctx)
	hashes, err := c.loadPoll(ctx, chat, in.ReplyTo)
	if err != nil && !errors.Is(err, ErrPollUnreadable) {
		return false, err
	}
	if len(hashes) == 0 {
		log.Debug().Msg("WhatsApp vote in a poll the bridge does not know; not bridged")
		return false, nil
	}
	vote, err := l.client.DecryptPollVote(ctx, evt)
	if err != nil {
		log.Debug().Err(scrubErr(err)).Msg("WhatsApp vote could not be decrypted; not bridged")
		return false, nil
	}
	sel := []int{}
	for _, h := range vote.GetSelectedOptions() {
		for i, known := range hashes {
			if bytes.Equal(h, known) {
				sel = append(sel, i)
				break
			}
		}
	}
	in.Content.Poll.Selected = sel
	in.Content.Body = in.Content.PlainText()
	return true, nil
}

// sendPoll sends a poll and records its option hashes; a poll WhatsApp
// cannot carry (more than 12 options) goes out as its text.
func (c *Connector) sendPoll(ctx context.Context, l *login, row *chatRow, d *bridge.Delivery, o outgoing) (bridge.RemoteID, error) {
	p := d.Event.Content.Poll
	if len(p.Options) > maxPollOptions || len(p.Options) < 2 {
		return c.send(ctx, l, row, d, buildText(&bridge.Content{Type: bridge.MsgText, Body: d.Event.Content.PlainText()}, o))
	}
	max := p.MaxSelections
	if max >= len(p.Options) {
		max = 0 // WhatsApp's "any number"
	}
	msg := l.client.BuildPollCreation(o.Prefix+p.Question, p.Options, max)
	if ci := o.contextInfo(); ci != nil {
		msg.PollCreationMessage.ContextInfo = ci
	}
	// Recorded before it is sent (the ID is the one send gives it), so
	// a vote arriving right after finds it.
	msgID := c.ownID(row.account, string(row.id), string(d.Message), string(d.ID))
	if err := c.storePoll(ctx, row.id, msgID, optionHashes(p.Options)); err != nil {
		return "", err
	}
	return c.send(ctx, l, row, d, msg)
}

// sendVote votes in a WhatsApp poll for the account's own user. A vote
// from someone else (through the relay, or a guest in the owner's
// portal) cannot be theirs on WhatsApp, so it goes out as a text reply
// to the poll naming the option numbers.
func (c *Connector) sendVote(ctx context.Context, l *login, row *chatRow, d *bridge.Delivery, o outgoing) (bridge.RemoteID, error) {
	ct := d.Event.Content
	if d.ReplyTo == "" {
		return "", bridge.Permanent(ErrPollUnknown)
	}
	if o.Prefix != "" {
		return c.send(ctx, l, row, d, buildText(&bridge.Content{Type: bridge.MsgText, Body: ct.PlainText()}, o))
	}
	hashes, err := c.loadPoll(ctx, row.id, string(d.ReplyTo))
	if err != nil {
		return "", bridge.Permanent(err)
	} else if len(hashes) == 0 {
		return "", bridge.Permanent(ErrPollUnknown)
	}
	sender, err := c.participant(ctx, l, row, string(d.ReplyTo))
	if err != nil {
		return "", err
	} else if sender.IsEmpty() {
		return "", bridge.Permanent(ErrPollUnknown)
	}
	vote := &waE2E.PollVoteMessage{SelectedOptions: [][]byte{}}
	for _, i := range ct.Poll.Selected {
		if i >= 0 && i < len(hashes) {
			vote.SelectedOptions = append(vote.SelectedOptions, hashes[i])
		}
	}
	info := &types.MessageInfo{
		MessageSource: types.MessageSource{Chat: row.jid, Sender: sender, IsFromMe: sender.User == l.jid.User, IsGroup: row.group},
		ID:            types.MessageID(d.ReplyTo),
	}
	update, err := l.client.EncryptPollVote(ctx, info, vote)
	if err != nil {
		return "", bridge.Permanent(fmt.Errorf("%w: %w", ErrPollUnknown, scrubErr(err)))
	}
	return c.send(ctx, l, row, d, &waE2E.Message{PollUpdateMessage: update})
}

// buildLocation is the WhatsApp message for a location.
func buildLocation(loc *bridge.Location, o outgoing) *waE2E.Message {
	m := &waE2E.LocationMessage{
		DegreesLatitude:  proto.Float64(loc.Lat),
		DegreesLongitude: proto.Float64(loc.Long),
		ContextInfo:      o.contextInfo(),
	}
	if name := strings.TrimSpace(o.Prefix + loc.Name); name != "" {
		m.Name = proto.String(strings.TrimSuffix(name, ":"))
	}
	return &waE2E.Message{LocationMessage: m}
}

// richContent does what polls need before an incoming message is
// submitted: a poll's option hashes are recorded, a vote is decrypted and
// matched to option numbers. ok is false for a vote that is not bridged.
func (c *Connector) richContent(ctx context.Context, l *login, chat bridge.ChatID, evt *events.Message, in *incoming) (bool, error) {
	if in.Content == nil {
		return true, nil
	}
	switch in.Content.Type {
	case bridge.MsgPollVote:
		return c.resolveVote(ctx, l, chat, evt, in)
	case bridge.MsgPoll:
		if err := c.storePoll(ctx, chat, evt.Info.ID, optionHashes(in.Content.Poll.Options)); err != nil {
			return false, err
		}
	}
	return true, nil
}
