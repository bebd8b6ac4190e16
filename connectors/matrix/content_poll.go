package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Polls (MSC3381, unstable prefix, as Element sends and shows them). A
// poll crosses the bridge with its options by index; a response names
// answers by the IDs its poll start gave them, so the connector reads the
// poll start (from the homeserver, decrypting it in an encrypted room)
// to turn IDs into indexes and back. Nothing about a poll is stored.

const (
	pollKindDisclosed = "org.matrix.msc3381.poll.disclosed"
	msc1767Text       = "org.matrix.msc1767.text"
)

// pollText is an MSC1767 text block as polls use it.
type pollText struct {
	Text string `json:"org.matrix.msc1767.text,omitempty"`
	// Body is what some clients send instead (m.text's first body).
	Message []event.ExtensibleText `json:"org.matrix.msc1767.message,omitempty"`
	Body    string                 `json:"body,omitempty"`
}

func (t pollText) String() string {
	if t.Text != "" {
		return t.Text
	}
	for _, m := range t.Message {
		if m.MimeType == "" || m.MimeType == "text/plain" {
			return m.Body
		}
	}
	return t.Body
}

type pollAnswer struct {
	ID string `json:"id"`
	pollText
}

type pollStart struct {
	Kind          string       `json:"kind"`
	MaxSelections int          `json:"max_selections"`
	Question      pollText     `json:"question"`
	Answers       []pollAnswer `json:"answers"`
}

// pollContent is the content of a poll start, response or end.
type pollContent struct {
	RelatesTo *event.RelatesTo `json:"m.relates_to,omitempty"`
	Start     *pollStart       `json:"org.matrix.msc3381.poll.start,omitempty"`
	Response  *struct {
		Answers []string `json:"answers"`
	} `json:"org.matrix.msc3381.poll.response,omitempty"`
	// Text is the fallback other clients show.
	Text     string          `json:"org.matrix.msc1767.text,omitempty"`
	Body     string          `json:"body,omitempty"`
	Mentions *event.Mentions `json:"m.mentions,omitempty"`
}

func parsePollContent(evt *event.Event) (*pollContent, bool) {
	raw := evt.Content.VeryRaw
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(evt.Content.Raw); err != nil {
			return nil, false
		}
	}
	var pc pollContent
	if err := json.Unmarshal(raw, &pc); err != nil {
		return nil, false
	}
	return &pc, true
}

// isPollEvent reports the event types handlePoll takes.
func isPollEvent(t event.Type) bool {
	return t == event.EventUnstablePollStart || t == event.EventUnstablePollResponse || t == event.EventUnstablePollEnd
}

// handlePoll bridges a poll start, a vote and a poll's end (as a notice
// replying to the poll: WhatsApp cannot close a poll).
func (c *Connector) handlePoll(ctx context.Context, evt *event.Event) error {
	log := zerolog.Ctx(ctx)
	pc, ok := parsePollContent(evt)
	if !ok {
		log.Debug().Msg("Malformed poll event; skipped")
		return nil
	}
	out := c.baseEvent(evt, bridge.KindMessage)
	switch evt.Type {
	case event.EventUnstablePollStart:
		if pc.Start == nil || len(pc.Start.Answers) == 0 {
			return nil
		}
		p := &bridge.Poll{Question: pc.Start.Question.String(), MaxSelections: max(pc.Start.MaxSelections, 1)}
		for _, a := range pc.Start.Answers {
			p.Options = append(p.Options, a.String())
		}
		out.Content = &bridge.Content{Type: bridge.MsgPoll, Poll: p}
		out.Content.Body = out.Content.PlainText()
		if reply := pc.RelatesTo.GetNonFallbackReplyTo(); reply != "" {
			out.ReplyTo = bridge.RemoteID(reply)
		}
	case event.EventUnstablePollResponse:
		poll := pollOf(pc.RelatesTo)
		if poll == "" || pc.Response == nil {
			return nil
		}
		ids, err := c.pollAnswerIDs(ctx, evt.RoomID, poll)
		if err != nil {
			log.Debug().Err(err).Msg("Poll of a response could not be read; not bridged")
			return nil
		}
		sel := []int{}
		for _, a := range pc.Response.Answers {
			if i := slices.Index(ids, a); i >= 0 && !slices.Contains(sel, i) {
				sel = append(sel, i)
			}
		}
		out.ReplyTo = bridge.RemoteID(poll)
		out.Content = &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: sel}}
		out.Content.Body = out.Content.PlainText()
	case event.EventUnstablePollEnd:
		poll := pollOf(pc.RelatesTo)
		if poll == "" {
			return nil
		}
		body := pc.Text
		if body == "" {
			body = pc.Body
		}
		if body == "" {
			body = "The poll has ended."
		}
		out.ReplyTo = bridge.RemoteID(poll)
		out.Content = &bridge.Content{Type: bridge.MsgNotice, Body: body}
	default:
		return nil
	}
	_, err := c.submit(ctx, out)
	return err
}

// pollOf is the poll a response or end refers to (m.reference).
func pollOf(rel *event.RelatesTo) id.EventID {
	if rel == nil || rel.Type != event.RelReference {
		return ""
	}
	return rel.EventID
}

// pollAnswerIDs reads a poll start from the homeserver (decrypting it in
// an encrypted room) and returns its answer IDs in order.
func (c *Connector) pollAnswerIDs(ctx context.Context, room id.RoomID, poll id.EventID) ([]string, error) {
	evt, err := c.as.BotClient().GetEvent(c.mctx(ctx), room, poll)
	if err != nil {
		return nil, classify("get poll", err)
	}
	evt.RoomID = room
	if evt.Type == event.EventEncrypted {
		if c.crypto == nil {
			return nil, fmt.Errorf("%w: poll is encrypted", ErrEncryptionUnavailable)
		}
		if err = prepareEvent(ctx, evt); err != nil {
			return nil, err
		}
		if evt, err = c.crypto.decrypt(ctx, evt); err != nil {
			return nil, err
		}
	}
	if evt.Type != event.EventUnstablePollStart {
		return nil, fmt.Errorf("%w: %s is not a poll", bridge.ErrInvalidEvent, evt.Type.Type)
	}
	pc, ok := parsePollContent(evt)
	if !ok || pc.Start == nil {
		return nil, fmt.Errorf("%w: malformed poll", bridge.ErrInvalidEvent)
	}
	ids := make([]string, len(pc.Start.Answers))
	for i, a := range pc.Start.Answers {
		ids[i] = a.ID
	}
	return ids, nil
}

// sendPoll sends a poll start as the sender's ghost. Its answers are
// numbered from 1, and its fallback text lists them for clients without
// polls.
func (c *Connector) sendPoll(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return "", err
	}
	in := d.Event.Content
	start := &pollStart{Kind: pollKindDisclosed, MaxSelections: max(in.Poll.MaxSelections, 1), Question: pollText{Text: in.Poll.Question, Body: in.Poll.Question}}
	for i, o := range in.Poll.Options {
		start.Answers = append(start.Answers, pollAnswer{ID: strconv.Itoa(i + 1), pollText: pollText{Text: o}})
	}
	text := in.PlainText()
	content := &pollContent{Start: start, Text: text, Body: text, Mentions: &event.Mentions{}}
	if d.ReplyTo != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(d.ReplyTo))
	}
	return c.sendEvent(ctx, intent, room, event.EventUnstablePollStart, content, d)
}

// sendVote sends a poll response as the voter's ghost, naming the answers
// by the IDs the poll start gave them.
func (c *Connector) sendVote(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	if d.ReplyTo == "" {
		return "", bridge.Permanent(fmt.Errorf("%w: the poll is not on Matrix", bridge.ErrTargetUnknown))
	}
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return "", err
	}
	ids, err := c.pollAnswerIDs(ctx, room, id.EventID(d.ReplyTo))
	if err != nil {
		return "", err
	}
	answers := []string{}
	for _, i := range d.Event.Content.Poll.Selected {
		if i >= 0 && i < len(ids) {
			answers = append(answers, ids[i])
		}
	}
	content := map[string]any{
		"m.relates_to":                     &event.RelatesTo{Type: event.RelReference, EventID: id.EventID(d.ReplyTo)},
		"org.matrix.msc3381.poll.response": map[string]any{"answers": answers},
	}
	return c.sendEvent(ctx, intent, room, event.EventUnstablePollResponse, content, d)
}

// sendRich sends the content types with their own Matrix events
// (locations, polls, votes); ok is false for the others.
func (c *Connector) sendRich(ctx context.Context, d *bridge.Delivery) (_ bridge.RemoteID, ok bool, _ error) {
	in := d.Event.Content
	switch {
	case in.Type == bridge.MsgPoll && in.Poll != nil && len(in.Poll.Options) > 0:
		remote, err := c.sendPoll(ctx, d)
		return remote, true, err
	case in.Type == bridge.MsgPollVote && in.Poll != nil:
		remote, err := c.sendVote(ctx, d)
		return remote, true, err
	case in.Type == bridge.MsgLocation && in.Location != nil:
		intent, room, err := c.senderIntent(ctx, d)
		if err != nil {
			return "", true, err
		}
		content := locationToMatrix(in)
		if d.ReplyTo != "" {
			content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(d.ReplyTo))
		}
		c.addTimer(content, d)
		remote, err := c.sendEvent(ctx, intent, room, event.EventMessage, content, d)
		return remote, true, err
	}
	return "", false, nil
}
