package sms

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// maxWebhookBody bounds a webhook form; Twilio's are a few KB.
const maxWebhookBody = 64 << 10

// maxMedia is Twilio's limit on attachments per MMS.
const maxMedia = 10

var (
	messageSIDPattern = regexp.MustCompile(`^(SM|MM)[0-9a-fA-F]{32}$`)
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
)

// WebhookForm is a parsed Twilio messaging webhook (inbound message or
// status callback).
type WebhookForm struct {
	// Params are the form fields, one value each, as signed by Twilio.
	Params map[string]string

	MessageSID string
	AccountSID string
	From, To   string
	Body       string
	Media      []WebhookMedia
	// Status and ErrorCode are set on status callbacks.
	Status    string
	ErrorCode string
}

// WebhookMedia is one MediaUrlN / MediaContentTypeN pair.
type WebhookMedia struct {
	URL         string
	ContentType string
}

// ParseWebhookForm parses an application/x-www-form-urlencoded Twilio
// webhook body. A field given twice, a malformed MessageSid or AccountSid,
// or a NumMedia that does not match the MediaUrlN fields is an error
// (wrapping ErrWebhook). Error messages never quote field values.
func ParseWebhookForm(body []byte) (*WebhookForm, error) {
	if len(body) > maxWebhookBody {
		return nil, fmt.Errorf("%w: body too large", ErrWebhook)
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: not a form", ErrWebhook)
	}
	f := &WebhookForm{Params: make(map[string]string, len(values))}
	for k, v := range values {
		if len(v) != 1 {
			return nil, fmt.Errorf("%w: field %q given %d times", ErrWebhook, sanitizeKey(k), len(v))
		}
		f.Params[k] = v[0]
	}
	f.MessageSID = f.Params["MessageSid"]
	if f.MessageSID == "" {
		f.MessageSID = f.Params["SmsSid"]
	}
	if !messageSIDPattern.MatchString(f.MessageSID) {
		return nil, fmt.Errorf("%w: missing or malformed MessageSid", ErrWebhook)
	}
	f.AccountSID = f.Params["AccountSid"]
	if !accountSIDPattern.MatchString(f.AccountSID) {
		return nil, fmt.Errorf("%w: missing or malformed AccountSid", ErrWebhook)
	}
	f.From, f.To, f.Body = f.Params["From"], f.Params["To"], f.Params["Body"]
	f.Status = f.Params["MessageStatus"]
	if f.Status == "" {
		f.Status = f.Params["SmsStatus"]
	}
	f.ErrorCode = f.Params["ErrorCode"]
	n := 0
	if s, ok := f.Params["NumMedia"]; ok {
		if n, err = strconv.Atoi(s); err != nil || n < 0 || n > maxMedia {
			return nil, fmt.Errorf("%w: NumMedia out of range", ErrWebhook)
		}
	}
	for i := range n {
		u, ok := f.Params["MediaUrl"+strconv.Itoa(i)]
		if !ok || u == "" {
			return nil, fmt.Errorf("%w: NumMedia is %d but MediaUrl%d is missing", ErrWebhook, n, i)
		}
		f.Media = append(f.Media, WebhookMedia{URL: u, ContentType: f.Params["MediaContentType"+strconv.Itoa(i)]})
	}
	return f, nil
}

func sanitizeKey(k string) string {
	if len(k) > 32 {
		k = k[:32]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, k)
}

// readSigned reads and parses a webhook and checks its X-Twilio-Signature
// against sms.public_url + path and the account. It writes the error
// response itself and returns nil when the request is refused.
func (c *Connector) readSigned(w http.ResponseWriter, r *http.Request, path string) *WebhookForm {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return nil
	} else if err != nil {
		// A body cut off or trickled past the listener's read timeout.
		http.Error(w, "failed to read request body", http.StatusBadRequest)
		return nil
	}
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		c.metrics.messages.WithLabelValues("in", "unsigned").Inc()
		c.log.Warn().Str("path", path).Msg("Refused Twilio webhook without X-Twilio-Signature")
		http.Error(w, "missing signature", http.StatusForbidden)
		return nil
	}
	form, err := ParseWebhookForm(body)
	if err != nil {
		// Validate the signature over the raw fields first, so that an
		// unsigned malformed request is a 403 like any other forgery.
		values, _ := url.ParseQuery(string(body))
		params := make(map[string]string, len(values))
		for k, v := range values {
			params[k] = v[0]
		}
		if !c.validator.Validate(c.publicURL+path, params, sig) {
			c.refuseForged(w, path)
			return nil
		}
		c.log.Warn().Err(err).Str("path", path).Msg("Refused malformed Twilio webhook")
		http.Error(w, "malformed webhook", http.StatusBadRequest)
		return nil
	}
	if !c.validator.Validate(c.publicURL+path, form.Params, sig) {
		c.refuseForged(w, path)
		return nil
	}
	if form.AccountSID != c.cfg.Twilio.AccountSID {
		c.log.Warn().Str("path", path).Msg("Refused Twilio webhook for another account")
		http.Error(w, "wrong account", http.StatusForbidden)
		return nil
	}
	return form
}

func (c *Connector) refuseForged(w http.ResponseWriter, path string) {
	c.metrics.messages.WithLabelValues("in", "forged").Inc()
	c.log.Warn().Str("path", path).Msg("Refused Twilio webhook with an invalid X-Twilio-Signature (check sms.public_url)")
	http.Error(w, "invalid signature", http.StatusForbidden)
}

const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

func writeTwiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, emptyTwiML)
}

// writeTwiMLMessage answers a webhook with one reply SMS to the sender.
func writeTwiMLMessage(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Message>`)
	_ = xml.EscapeText(w, []byte(text))
	_, _ = io.WriteString(w, `</Message></Response>`)
}

// Keywords Twilio's Advanced Opt-Out recognises (case-insensitive, the
// whole body).
var (
	stopKeywords  = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
	startKeywords = []string{"START", "YES", "UNSTOP", "OPTIN"}
	helpKeywords  = []string{"HELP", "INFO"}
)

// Keyword returns "STOP", "START" or "HELP" when body is one of Twilio's
// opt-out, opt-in or help keywords, else "".
func Keyword(body string) string {
	w := strings.ToUpper(strings.Trim(strings.TrimSpace(body), ".!"))
	for _, set := range []struct {
		name  string
		words []string
	}{{"STOP", stopKeywords}, {"START", startKeywords}, {"HELP", helpKeywords}} {
		for _, k := range set.words {
			if w == k {
				return set.name
			}
		}
	}
	return ""
}

func (c *Connector) handleIncoming(w http.ResponseWriter, r *http.Request) {
	form := c.readSigned(w, r, pathIncoming)
	if form == nil {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	received := c.now()
	log := c.log.With().Str("message_sid", form.MessageSID).Logger()
	if c.spool != nil && c.spool.pending() {
		// Earlier webhooks wait in the spool: this one goes behind them,
		// so the conversation gets them in the order they came.
		c.keep(w, form, received, log)
		return
	}
	reply, err := c.processIncoming(ctx, form, received)
	if err != nil {
		if c.spool == nil {
			log.Error().Err(err).Msg("Failed to accept inbound SMS")
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		log.Warn().Err(err).Msg("Could not accept inbound SMS now; keeping it in the spool until the database is back")
		c.keep(w, form, received, log)
		return
	}
	if reply == "" {
		writeTwiML(w)
	} else {
		writeTwiMLMessage(w, reply)
	}
}

// processIncoming handles an inbound message received at received: the
// keyword it carries, its routing, and its submission to the router. It
// returns the text of a reply to the contact ("" for none) or an error
// for a cause that may pass (the database), after which the whole webhook
// may be handled again: every step is idempotent (keywords are claimed by
// MessageSid, the router deduplicates events by MessageSid).
func (c *Connector) processIncoming(ctx context.Context, form *WebhookForm, received time.Time) (string, error) {
	from, _, err := readNumber(form.From)
	if err != nil {
		c.log.Warn().Str("message_sid", form.MessageSID).Msg("Dropped inbound SMS from an invalid sender number (short code or alphanumeric?)")
		return "", nil
	}
	to, _, err := readNumber(form.To)
	poolHash := c.keys.poolHash(to)
	if _, ours := c.pool[poolHash]; err != nil || !ours {
		c.log.Warn().Str("message_sid", form.MessageSID).Msg("Dropped inbound SMS sent to a number not in sms.twilio.numbers")
		return "", nil
	}
	contactHash := c.keys.contactHash(from)
	log := c.log.With().Str("message_sid", form.MessageSID).Str("contact", c.keys.logRef(from)).Logger()
	keyword := Keyword(form.Body)
	if len(form.Media) > 0 {
		keyword = ""
	}
	var kw *keywordState
	if keyword != "" {
		// Keywords act after the MessageSid dedupe, the newest winning.
		if kw, err = c.applyKeyword(ctx, form.MessageSID, contactHash, keyword, received); err != nil {
			return "", err
		}
		switch {
		case kw.done:
			log.Info().Str("keyword", keyword).Msg("Ignored an SMS keyword already handled (redelivered or replayed)")
			return "", nil
		case kw.seen:
			log.Info().Str("keyword", keyword).Msg("SMS keyword already recorded; telling the conversations")
		case !kw.applied:
			log.Info().Str("keyword", keyword).Msg("Ignored an SMS keyword older than the one in force")
		default:
			log.Info().Str("keyword", keyword).Msg("Recorded SMS keyword")
		}
		if !kw.applied {
			// A stale STOP or START tells nobody anything true.
			c.keywordDone(ctx, kw)
			return "", nil
		}
	}
	chat, err := c.route(ctx, from, contactHash, poolHash)
	if err != nil {
		return "", err
	}
	if chat == "" {
		c.metrics.messages.WithLabelValues("in", "unrouted").Inc()
		if kw != nil {
			// Twilio answers keywords itself; nobody else is to be told.
			log.Info().Msg("SMS keyword from a contact no conversation uses this pool number with")
			c.keywordDone(ctx, kw)
			return "", nil
		}
		log.Warn().Msg("Inbound SMS reaches nobody: no conversation uses this pool number with the contact; not kept")
		return c.stranger(ctx, from, contactHash, poolHash), nil
	}
	events := c.inboundEvents(form, from, chat, keyword)
	if keyword == "STOP" || keyword == "START" {
		// An opt-out covers every conversation with the contact: tell them all.
		chats, err := c.contactChats(ctx, contactHash)
		if err != nil {
			return "", err
		}
		for _, other := range chats {
			if other != chat {
				events = append(events, c.inboundEvents(form, from, other, keyword)...)
			}
		}
	}
	var refused *bridge.RefusedError
	for _, evt := range events {
		if err = c.host.Submit(ctx, evt); err != nil {
			if errors.Is(err, bridge.ErrUnknownLeg) {
				log.Warn().Str("chat", string(evt.Source.Chat)).Msg("Dropped inbound SMS: its chat left its conversation")
				continue
			}
			if errors.As(err, &refused) {
				// Refused by the bridge's safety rules: the contact is told
				// once per burst in the webhook's reply (each reply is an
				// SMS that costs money), never on every message.
				log.Info().Str("reason", refused.Reason).Bool("repeat", refused.Repeat).Msg("Inbound SMS refused")
				c.metrics.messages.WithLabelValues("in", "refused").Inc()
				if refused.Repeat {
					return "", nil
				}
				return "Not delivered: " + refused.Reason + ".", nil
			}
			if errors.Is(err, bridge.ErrInvalidEvent) {
				// Handling it again cannot help.
				log.Error().Err(err).Msg("Dropped inbound SMS the router refused as invalid")
				c.metrics.messages.WithLabelValues("in", "invalid").Inc()
				return "", nil
			}
			return "", fmt.Errorf("accept inbound sms: %w", err)
		}
	}
	if kw != nil {
		c.keywordDone(ctx, kw)
	}
	c.metrics.messages.WithLabelValues("in", "accepted").Inc()
	log.Debug().Str("chat", string(chat)).Int("media", len(form.Media)).Msg("Accepted inbound SMS")
	return "", nil
}

// contactChats lists the chats of a contact that belong to a conversation.
func (c *Connector) contactChats(ctx context.Context, contactHash string) ([]bridge.ChatID, error) {
	rows, err := c.db.Query(ctx, contactChatsQuery, contactHash)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bridge.ErrDatabase, err)
	}
	defer rows.Close()
	var out []bridge.ChatID
	for rows.Next() {
		var chat bridge.ChatID
		var pool, conv string
		if err = rows.Scan(&chat, &pool, &conv); err != nil {
			return nil, err
		}
		out = append(out, chat)
	}
	return out, rows.Err()
}

// route finds the chat a message from contact to a pool number belongs to:
// the conversation using that pool number with the contact that was most
// recently active, else a new chat offered to Hooks.OnUnrouted. It returns
// "" when nothing claims the message.
func (c *Connector) route(ctx context.Context, contact, contactHash, poolHash string) (bridge.ChatID, error) {
	var chat bridge.ChatID
	// A send from this pool number whose commit is under way may make
	// another conversation the one that sent last.
	c.unsettled.waitPair(ctx, contactHash, poolHash)
	err := c.db.QueryRow(ctx, routeQuery, contactHash, poolHash).Scan(&chat)
	if err == nil {
		return chat, nil
	} else if !errors.Is(err, sqlNoRows) {
		return "", fmt.Errorf("%w: route sms: %w", bridge.ErrDatabase, err)
	}
	if c.hooks.OnUnrouted == nil {
		return "", nil
	}
	pool := c.pool[poolHash]
	chat = bridge.ChatID(c.keys.chatID(contact, pool, ""))
	now := c.now().UnixMilli()
	if _, err = c.db.Exec(ctx, insertChatQuery, chat, contactHash, c.keys.seal(contact, contactHash), poolHash, "", now); err != nil {
		return "", fmt.Errorf("%w: record sms chat: %w", bridge.ErrDatabase, err)
	}
	conv, err := c.hooks.OnUnrouted(ctx, chat, pool)
	if err != nil || conv == "" {
		if err != nil {
			c.log.Warn().Err(err).Msg("OnUnrouted hook failed")
		}
		return "", nil
	}
	if _, err = c.db.Exec(ctx, claimChatQuery, chat, conv, now); err != nil {
		return "", fmt.Errorf("%w: claim sms chat: %w", bridge.ErrDatabase, err)
	}
	return chat, nil
}

// inboundEvents turns a webhook into router events: one message carrying
// the text and the first attachment, one more per further attachment.
func (c *Connector) inboundEvents(form *WebhookForm, from string, chat bridge.ChatID, keyword string) []*bridge.Event {
	id, name := c.keys.pseudonym(from)
	base := bridge.Event{
		Kind:      bridge.KindMessage,
		Source:    bridge.Leg{Network: bridge.NetworkSMS, Chat: chat},
		Sender:    bridge.Sender{ID: bridge.UserID(id), DisplayName: name},
		Timestamp: c.now(),
	}
	switch keyword {
	case "STOP":
		evt := base
		evt.SourceID = bridge.RemoteID(form.MessageSID)
		evt.Content = &bridge.Content{Type: bridge.MsgNotice, Body: "This contact replied STOP and has opted out of SMS from this bridge. Messages to them will not be delivered until they reply START."}
		return []*bridge.Event{&evt}
	case "START":
		evt := base
		evt.SourceID = bridge.RemoteID(form.MessageSID)
		evt.Content = &bridge.Content{Type: bridge.MsgNotice, Body: "This contact replied START and can receive SMS from this bridge again."}
		return []*bridge.Event{&evt}
	}
	var out []*bridge.Event
	if len(form.Media) == 0 {
		evt := base
		evt.SourceID = bridge.RemoteID(form.MessageSID)
		evt.Content = &bridge.Content{Type: bridge.MsgText, Body: form.Body}
		return append(out, &evt)
	}
	for i, m := range form.Media {
		evt := base
		evt.SourceID = bridge.RemoteID(form.MessageSID)
		if i > 0 {
			evt.SourceID = bridge.RemoteID(form.MessageSID + "/" + strconv.Itoa(i))
		}
		ct := strings.ToLower(strings.TrimSpace(m.ContentType))
		evt.Content = &bridge.Content{
			Type:  mediaType(ct),
			Media: &bridge.Media{Ref: m.URL, MimeType: ct, FileName: "attachment" + strconv.Itoa(i+1) + extFor(ct)},
		}
		if i == 0 {
			evt.Content.Body = form.Body
		}
		out = append(out, &evt)
	}
	return out
}

func mediaType(ct string) bridge.MsgType {
	switch {
	case strings.HasPrefix(ct, "image/"):
		return bridge.MsgImage
	case strings.HasPrefix(ct, "video/"):
		return bridge.MsgVideo
	case strings.HasPrefix(ct, "audio/"):
		return bridge.MsgAudio
	}
	return bridge.MsgFile
}

func extFor(ct string) string {
	switch ct {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	case "video/mp4":
		return ".mp4"
	case "audio/mpeg":
		return ".mp3"
	case "text/vcard", "text/x-vcard":
		return ".vcf"
	}
	return ""
}

// Status is a Twilio message status, simplified.
type Status string

// Statuses reported to Hooks.OnStatus.
const (
	StatusQueued    Status = "queued"
	StatusSent      Status = "sent"
	StatusDelivered Status = Status(bridge.StateDelivered)
	StatusFailed    Status = Status(bridge.StateFailed)
)

// MapStatus maps Twilio's MessageStatus to a Status; ok is false for a
// value Twilio does not document.
func MapStatus(twilioStatus string) (s Status, ok bool) {
	switch strings.ToLower(twilioStatus) {
	case "accepted", "scheduled", "queued", "sending":
		return StatusQueued, true
	case "sent":
		return StatusSent, true
	case "delivered", "read":
		return StatusDelivered, true
	case "undelivered", "failed", "canceled":
		return StatusFailed, true
	}
	return "", false
}

func (c *Connector) handleStatus(w http.ResponseWriter, r *http.Request) {
	form := c.readSigned(w, r, pathStatus)
	if form == nil {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	status, ok := MapStatus(form.Status)
	if !ok {
		c.log.Warn().Str("message_sid", form.MessageSID).Str("status", sanitizeKey(form.Status)).Msg("Ignored unknown Twilio message status")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var conv bridge.ConversationID
	var msg bridge.MessageID
	var chat bridge.ChatID
	var prev string
	err := c.db.QueryRow(ctx, sentBySIDQuery, form.MessageSID).Scan(&conv, &msg, &chat, &prev)
	if errors.Is(err, sqlNoRows) && c.unsettled.waitSID(r.Context(), form.MessageSID) {
		// Sent a moment ago: its row was being committed.
		err = c.db.QueryRow(ctx, sentBySIDQuery, form.MessageSID).Scan(&conv, &msg, &chat, &prev)
	}
	if errors.Is(err, sqlNoRows) {
		// Not ours, or pruned after retention.metadata.
		w.WriteHeader(http.StatusNoContent)
		return
	} else if err != nil {
		c.log.Error().Err(err).Msg("Failed to look up MessageSid of a status callback")
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	if _, err = c.db.Exec(ctx, updateSentQuery, form.MessageSID, string(status)); err != nil {
		c.log.Warn().Err(err).Msg("Failed to record SMS status")
	}
	if status == StatusFailed && form.ErrorCode == strconv.Itoa(CodeUnsubscribed) {
		if row, err := c.loadChat(ctx, chat); err == nil {
			if err = c.setOptOut(ctx, row.contactHash, true, "twilio-21610"); err != nil {
				c.log.Warn().Err(err).Msg("Failed to record opt-out reported by Twilio")
			}
		}
	}
	ev := c.log.Debug()
	if status == StatusFailed {
		ev = c.log.Warn()
	}
	ev.Str("message_sid", form.MessageSID).Str("conversation", string(conv)).Str("message", string(msg)).
		Str("status", string(status)).Str("error_code", sanitizeKey(form.ErrorCode)).Msg("SMS status callback")
	if c.hooks.OnStatus != nil && string(status) != prev {
		c.hooks.OnStatus(ctx, conv, msg, string(status), form.ErrorCode)
	}
	w.WriteHeader(http.StatusNoContent)
}

// DownloadMedia implements bridge.MediaDownloader: it fetches an MMS
// attachment (a MediaUrlN of a webhook) from the Twilio API with the
// account's credentials. Only media URLs of this account are fetched, and
// always from sms.twilio.api_url.
func (c *Connector) DownloadMedia(ctx context.Context, media *bridge.Media) (io.ReadCloser, error) {
	u, err := url.Parse(media.Ref)
	prefix := "/2010-04-01/Accounts/" + c.cfg.Twilio.AccountSID + "/Messages/"
	if err != nil || !strings.HasPrefix(u.Path, prefix) || !strings.Contains(u.Path[len(prefix):], "/Media/") || strings.Contains(u.Path, "..") {
		return nil, bridge.Permanent(ErrMediaRef)
	}
	target := *c.apiURL
	target.Path = strings.TrimRight(c.apiURL.Path, "/") + u.Path
	target.RawQuery = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, bridge.Permanent(err)
	}
	req.SetBasicAuth(c.cfg.Twilio.AccountSID, c.cfg.Twilio.AuthToken)
	hc := &http.Client{Timeout: 2 * time.Minute}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sms: download media: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err = fmt.Errorf("sms: download media: HTTP %d", resp.StatusCode)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return nil, bridge.Permanent(err)
		}
		return nil, err
	}
	return resp.Body, nil
}
