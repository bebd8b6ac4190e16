package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Twilio error codes the connector treats specially.
const (
	CodeUnsubscribed    = 21610 // recipient replied STOP
	CodeInvalidTo       = 21211 // invalid 'To' number
	CodeNotMobile       = 21614 // 'To' is not a valid mobile number
	CodeTooManyRequests = 20429
	CodeAuthFailed      = 20003
)

// healthThrottled is the health message while Twilio answers 429.
const healthThrottled = "Twilio is throttling sends (HTTP 429); messages wait in the queue"

// defaultRetryAfter is used for a 429 without a usable Retry-After.
const defaultRetryAfter = 5 * time.Second

type metrics struct {
	segments     *prometheus.CounterVec
	messages     *prometheus.CounterVec
	mms          prometheus.Counter
	mediaFetches *prometheus.CounterVec
	// sent and refused are messages{direction="out"} looked up once, for
	// the send path, and gsm7 and ucs2 the segments of each encoding.
	sent, refused prometheus.Counter
	gsm7, ucs2    prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sb_sms_segments_total",
			Help: "SMS segments sent through Twilio (what carriers bill), by encoding (gsm7 or ucs2).",
		}, []string{"encoding"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sb_sms_messages_total",
			Help: "SMS messages by direction (in, out) and result.",
		}, []string{"direction", "result"}),
		mms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sb_sms_mms_total",
			Help: "MMS messages (with an attachment) accepted by Twilio.",
		}),
		mediaFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sb_sms_media_fetches_total",
			Help: "Fetches of outbound MMS attachments by Twilio, by result (served, not_found, too_large, error).",
		}, []string{"result"}),
	}
	m.sent = m.messages.WithLabelValues("out", "sent")
	m.refused = m.messages.WithLabelValues("out", "refused")
	m.gsm7 = m.segments.WithLabelValues(string(GSM7))
	m.ucs2 = m.segments.WithLabelValues(string(UCS2))
	return m
}

// segmentsOf is the counter of an encoding's segments.
func (m *metrics) segmentsOf(enc Encoding) prometheus.Counter {
	if enc == UCS2 {
		return m.ucs2
	}
	return m.gsm7
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	return errors.Join(reg.Register(m.segments), reg.Register(m.messages),
		reg.Register(m.mms), reg.Register(m.mediaFetches))
}

// SendMessage implements bridge.Connector: the body goes to the contact
// from the chat's pool number, split into parts of at most 1600
// characters. Parts already accepted by Twilio in an earlier attempt of the
// same delivery are not sent again.
func (c *Connector) SendMessage(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	if d.Event == nil || d.Event.Content == nil {
		return "", bridge.Permanent(errors.New("sms: delivery has no content"))
	}
	return c.send(ctx, d, false)
}

// send sends d's body, and with withMedia its attachment as an MMS with
// the first part.
func (c *Connector) send(ctx context.Context, d *bridge.Delivery, withMedia bool) (bridge.RemoteID, error) {
	row, err := c.openChatFor(ctx, d.Chat)
	if err != nil {
		return "", err
	}
	to, region := row.to, row.region
	from, ok := c.pool[row.poolHash]
	if !ok {
		return "", bridge.Permanent(ErrPoolNumberGone)
	}
	if err = checkCountry(region, c.cfg.AllowedCountries); err != nil {
		c.metrics.refused.Inc()
		return "", bridge.Permanent(err)
	}
	// The contact's opt-out and the parts of this delivery an earlier
	// attempt sent (sendstate.go).
	out, done, err := c.sendState(ctx, row.contactHash, d.ID)
	if err != nil {
		return "", err
	} else if out {
		c.metrics.refused.Inc()
		return "", bridge.Permanent(ErrOptedOut)
	}
	contentType := ""
	if withMedia {
		if contentType, err = checkMMS(region, d.Event.Content.Media); err != nil {
			c.metrics.refused.Inc()
			return "", err
		}
	}
	var parts []string
	if withMedia {
		if caption := c.captionFor(ctx, d); caption != "" {
			parts = SplitBody(caption, MaxBodyLength)
		} else {
			parts = []string{""}
		}
	} else {
		body := c.bodyFor(ctx, d)
		if body == "" {
			return "", bridge.Permanent(errors.New("sms: nothing to send (empty body)"))
		}
		parts = SplitBody(body, MaxBodyLength)
	}
	// Each part's encoding and segments, counted once (for the pacer and
	// then the metrics); one part, the common case, needs no allocation.
	var one [1]partSegments
	segs := one[:0]
	if len(parts) > 1 {
		segs = make([]partSegments, 0, len(parts))
	}
	segments := 0
	for i, part := range parts {
		var ps partSegments
		if _, ok := done[i]; !ok {
			if withMedia && i == 0 {
				segments++
			} else {
				ps.enc, ps.n = Segments(part)
				segments += max(ps.n, 1)
			}
		}
		segs = append(segs, ps)
	}
	if wait := c.pacer.wait(row.poolHash, d.ID, segments, c.now()); wait > 0 {
		return "", bridge.Paced(wait)
	}
	if c.hooks.BeforeSend != nil && len(done) == 0 {
		info := SendInfo{
			Sender: d.Event.Sender.ID, SenderNetwork: d.Event.Source.Network, Conversation: d.Conversation,
			Region: region, HighCost: highCost(to, c.highCost), Segments: segments,
		}
		if err = c.hooks.BeforeSend(ctx, info); err != nil {
			c.metrics.refused.Inc()
			return "", err
		}
	}
	var first bridge.RemoteID
	// The parts Twilio accepts in this attempt (sent.go).
	var sent []sentPart
	for i, part := range parts {
		if sid, ok := done[i]; ok {
			if i == 0 {
				first = bridge.RemoteID(sid)
			}
			continue
		}
		// The fields point at strings that outlive the call (twilio-go
		// only reads them), not at copies the setters would allocate.
		params := &openapi.CreateMessageParams{To: &row.to, StatusCallback: &c.statusURL}
		params.SetFrom(from)
		if part != "" {
			params.Body = &parts[i]
		}
		token := ""
		if withMedia && i == 0 {
			var mediaURL string
			if mediaURL, token, err = c.bindMedia(d, contentType); err != nil {
				c.recordPartial(ctx, d, sent)
				return "", err
			}
			params.SetMediaUrl([]string{mediaURL})
		}
		resp, err := c.twilio.Api.CreateMessage(params)
		if err != nil {
			if token != "" {
				c.media.remove(token)
			}
			c.recordPartial(ctx, d, sent)
			cerr := c.classify(ctx, row.contactHash, err)
			var ra *bridge.RetryAfterError
			if errors.Is(cerr, ErrThrottled) && errors.As(cerr, &ra) {
				// Everything else on this pool number waits too.
				c.pacer.hold(row.poolHash, c.now().Add(ra.After))
				c.setHealth(bridge.HealthDegraded, healthThrottled)
				withSend(c.log.Warn(), d).Err(cerr).Int("part", i).Dur("retry_in", ra.After).Msg("Twilio throttled an SMS; it waits in the queue")
				c.metrics.messages.WithLabelValues("out", "throttled").Inc()
				return "", cerr
			}
			withSend(c.log.Warn(), d).Err(cerr).Int("part", i).Int("parts", len(parts)).Msg("Twilio refused an SMS")
			c.metrics.messages.WithLabelValues("out", "error").Inc()
			return "", cerr
		}
		if resp.Sid == nil || *resp.Sid == "" {
			c.recordPartial(ctx, d, sent)
			return "", errors.New("sms: Twilio answered without a MessageSid")
		}
		sid := *resp.Sid
		status := StatusQueued
		if resp.Status != nil {
			if s, ok := MapStatus(*resp.Status); ok {
				status = s
			}
		}
		sent = append(sent, sentPart{sid: sid, part: i, status: string(status)})
		if token != "" {
			c.metrics.mms.Inc()
			withSend(c.log.Debug(), d).Str("message_sid", sid).Str("content_type", contentType).Msg("Sent MMS")
		} else {
			enc, n := segs[i].enc, segs[i].n
			c.metrics.segmentsOf(enc).Add(float64(n))
			withSend(c.log.Debug(), d).Str("message_sid", sid).Int("part", i).Str("encoding", string(enc)).Int("segments", n).Msg("Sent SMS")
		}
		c.metrics.sent.Inc()
		if i == 0 {
			first = bridge.RemoteID(sid)
		}
	}
	c.recordParts(ctx, d, row, sent)
	if h := c.Health(ctx); h.State == bridge.HealthBadCredential || h.Message == healthThrottled {
		c.setHealth(bridge.HealthOK, "")
	}
	return first, nil
}

// partSegments is a part's encoding and segment count (zero for a part
// already sent or an MMS).
type partSegments struct {
	enc Encoding
	n   int
}

// withSend adds a send's chat and delivery to a line logged: added to the
// lines, not copied into a sub-logger for every send (most log nothing).
func withSend(e *zerolog.Event, d *bridge.Delivery) *zerolog.Event {
	return e.Str("chat", string(d.Chat)).Str("delivery", string(d.ID))
}

// named reports whether a delivery goes out with its sender's name: in a
// group, and from a guest (not the leg's owner) in a one-to-one chat.
func (c *Connector) named(ctx context.Context, d *bridge.Delivery) bool {
	return d.Event.Sender.Guest || c.isGroup(ctx, d.Conversation)
}

// bodyFor is the text that goes out: the body (for media the caption and
// file name; for a location, poll or vote its readable text: the place
// and geo URI, the question and numbered options, the numbers voted
// for), prefixed with the sender's display name in a group.
func (c *Connector) bodyFor(ctx context.Context, d *bridge.Delivery) string {
	ct := d.Event.Content
	body := ct.PlainText()
	if ct.Media != nil && body == "" {
		body = ct.Media.FileName
	}
	if d.Event.Kind == bridge.KindMessage && ct.Type == bridge.MsgEmote && d.Event.Sender.DisplayName != "" {
		return "* " + d.Event.Sender.DisplayName + " " + body
	}
	if name := d.Event.Sender.DisplayName; name != "" && c.named(ctx, d) {
		return name + ": " + body
	}
	return body
}

// captionFor is the Body of an MMS: the caption, prefixed with the
// sender's display name in a group (the name alone without a caption).
func (c *Connector) captionFor(ctx context.Context, d *bridge.Delivery) string {
	caption := d.Event.Content.Body
	if name := d.Event.Sender.DisplayName; name != "" && c.named(ctx, d) {
		if caption == "" {
			return name + ":"
		}
		return name + ": " + caption
	}
	return caption
}

// classify turns a twilio-go error into the router's retry semantics and
// records an opt-out Twilio reports (21610).
func (c *Connector) classify(ctx context.Context, contactHash string, err error) error {
	out := Classify(err, c.transport.lastRetryAfter())
	var te *TwilioError
	if errors.As(out, &te) {
		switch te.Code {
		case CodeUnsubscribed:
			if err := c.setOptOut(ctx, contactHash, true, "twilio-21610"); err != nil {
				c.log.Warn().Err(err).Msg("Failed to record opt-out reported by Twilio")
			}
		case CodeAuthFailed:
			c.setHealth(bridge.HealthBadCredential, "Twilio rejected sms.twilio.account_sid / auth_token")
		}
		if te.Status == http.StatusUnauthorized {
			c.setHealth(bridge.HealthBadCredential, "Twilio rejected sms.twilio.account_sid / auth_token")
		}
	}
	return out
}

// Classify maps an error from twilio-go to the router's semantics:
// unsubscribed (21610, wrapping ErrOptedOut) and invalid numbers (21211,
// 21614) and other 4xx answers are bridge.Permanent; 429 is ErrThrottled
// inside bridge.Paced's error (retryAfter, or a default when zero): the
// delivery waits and is never given up for it; 5xx,
// undecodable answers and network errors are returned as they are, to be
// retried.
func Classify(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	var rest *client.TwilioRestError
	var v1 *client.RestErrorV1
	te := &TwilioError{}
	switch {
	case errors.As(err, &rest):
		te.Status, te.Code = rest.Status, rest.Code
	case errors.As(err, &v1):
		te.Status, te.Code = v1.HttpStatusCode, v1.Code
	default:
		return fmt.Errorf("sms: twilio request: %w", err)
	}
	if te.Status == http.StatusTooManyRequests || te.Code == CodeTooManyRequests {
		if retryAfter <= 0 {
			retryAfter = defaultRetryAfter
		}
		return &bridge.RetryAfterError{After: retryAfter, Err: fmt.Errorf("%w: %w: %w", bridge.ErrPaced, ErrThrottled, te)}
	}
	switch te.Code {
	case CodeUnsubscribed:
		return bridge.Permanent(fmt.Errorf("%w: %w", ErrOptedOut, te))
	case CodeInvalidTo, CodeNotMobile:
		return bridge.Permanent(fmt.Errorf("%w: %w", ErrInvalidNumber, te))
	}
	if te.Status >= 500 || te.Status == 0 {
		return te
	}
	return bridge.Permanent(te)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
