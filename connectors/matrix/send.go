package matrix

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// requestLogFilter drops mautrix's per-request log lines: they carry the
// request body (message text) when a request fails. The connector logs
// failures itself, without content.
type requestLogFilter struct{}

func (requestLogFilter) Run(e *zerolog.Event, _ zerolog.Level, msg string) {
	if strings.HasPrefix(msg, "Request ") {
		e.Discard()
	}
}

// mctx returns ctx with a logger safe to hand to mautrix.
func (c *Connector) mctx(ctx context.Context) context.Context {
	log := zerolog.Ctx(ctx)
	if log.GetLevel() == zerolog.Disabled || log == zerolog.DefaultContextLogger {
		log = &c.log
	}
	return log.Hook(requestLogFilter{}).WithContext(ctx)
}

// txnID is the idempotency key of a delivery: the homeserver returns the
// same event for a retried send instead of a second one.
func txnID(d *bridge.Delivery) string {
	return "sb." + string(d.Message) + "." + string(d.ID)
}

// ghostIntent returns the intent of the ghost standing for a delivery's
// sender, registering it and setting its display name on first use.
func (c *Connector) ghostIntent(ctx context.Context, network bridge.NetworkID, sender bridge.Sender) (*appservice.IntentAPI, error) {
	opaque := GhostOpaque(c.ghostKey, network, sender.ID)
	userID := id.NewUserID(c.cfg.Appservice.GhostPrefix+opaque, c.cfg.Homeserver.Domain)
	intent := c.as.Intent(userID)
	current, registered, err := c.ghostDisplayName(ctx, userID)
	if err != nil {
		return nil, err
	}
	if registered {
		_ = c.as.StateStore.MarkRegistered(ctx, userID)
	} else if err = intent.EnsureRegistered(ctx); err != nil {
		return nil, classify("register ghost", err)
	}
	name := c.contactName(ctx, sender, opaque)
	if !registered || (sender.DisplayName != "" && current != name) {
		if err = intent.SetDisplayName(ctx, name); err != nil {
			return nil, classify("set ghost display name", err)
		}
		if err = c.saveGhost(ctx, userID, name); err != nil {
			return nil, err
		}
	}
	c.rememberGhost(ctx, userID, network, sender.ID) // groupinfo.go
	return intent, nil
}

// sender returns the intent a delivery is sent with: the ghost of its
// sender.
func (c *Connector) senderIntent(ctx context.Context, d *bridge.Delivery) (*appservice.IntentAPI, id.RoomID, error) {
	room, err := roomID(d.Chat)
	if err != nil {
		return nil, "", err
	}
	if puppet := c.puppetIntent(ctx, room, d.Event.Sender); puppet != nil {
		return puppet, room, nil
	}
	intent, err := c.ghostIntent(ctx, d.Event.Source.Network, d.Event.Sender)
	if err != nil {
		return nil, "", err
	}
	if err = intent.EnsureJoined(ctx, room); err != nil {
		return nil, "", classify("join ghost", err)
	}
	c.mu.Lock()
	c.typers[typerKey{room, d.Event.Sender.ID}] = intent.UserID
	c.mu.Unlock()
	return intent, room, nil
}

func (c *Connector) sendEvent(ctx context.Context, intent *appservice.IntentAPI, room id.RoomID, typ event.Type, content any, d *bridge.Delivery) (bridge.RemoteID, error) {
	req := mautrix.ReqSendEvent{TransactionID: txnID(d)}
	if !d.Event.Timestamp.IsZero() {
		req.Timestamp = d.Event.Timestamp.UnixMilli()
	}
	typ, content, err := c.maybeEncrypt(ctx, room, typ, content)
	if err != nil {
		return "", err
	}
	resp, err := intent.SendMessageEvent(ctx, room, typ, content, req)
	if err != nil {
		return "", classify("send "+typ.Type, err)
	}
	return bridge.RemoteID(resp.EventID), nil
}

// maybeEncrypt encrypts content when the room is encrypted. A build
// without encryption refuses to send into an encrypted room rather than
// send plaintext there.
func (c *Connector) maybeEncrypt(ctx context.Context, room id.RoomID, typ event.Type, content any) (event.Type, any, error) {
	encrypted, err := c.IsEncrypted(ctx, bridge.ChatID(room))
	if err != nil || !encrypted {
		return typ, content, err
	}
	if c.crypto == nil {
		return typ, nil, bridge.Permanent(fmt.Errorf("%w: room is encrypted", ErrEncryptionUnavailable))
	}
	enc, err := c.crypto.encrypt(ctx, room, typ, content)
	if err != nil {
		return typ, nil, fmt.Errorf("encrypt: %w", err)
	}
	return event.EventEncrypted, enc, nil
}

// fromContent converts normalized content into a Matrix message.
func fromContent(in *bridge.Content) *event.MessageEventContent {
	out := &event.MessageEventContent{Body: in.Body}
	switch in.Type {
	case bridge.MsgNotice:
		out.MsgType = event.MsgNotice
	case bridge.MsgEmote:
		out.MsgType = event.MsgEmote
	default:
		out.MsgType = event.MsgText
	}
	if in.HTML != "" {
		out.Format = event.FormatHTML
		out.FormattedBody = in.HTML
		if out.Body == "" {
			out.Body = format.HTMLToText(in.HTML)
		}
	}
	out.Mentions = &event.Mentions{}
	return out
}

// SendMessage implements bridge.Connector: it sends a text, notice or
// emote as the sender's ghost. A media message the router hands here
// (only when it has no attachment to forward) goes out as text.
func (c *Connector) SendMessage(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	ctx = c.mctx(ctx)
	if remote, ok, err := c.sendRich(ctx, d); ok { // content_poll.go
		return remote, err
	}
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return "", err
	}
	content := fromContent(d.Event.Content)
	if d.ReplyTo != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(d.ReplyTo))
	}
	c.addTimer(content, d)
	return c.sendEvent(ctx, intent, room, event.EventMessage, content, d)
}

// addTimer marks a message that disappears (MSC4140-style Beeper field
// that mautrix clients read).
func (c *Connector) addTimer(content *event.MessageEventContent, d *bridge.Delivery) {
	if d.Event.Timer > 0 {
		content.BeeperDisappearingTimer = &event.BeeperDisappearingTimer{
			Type:  event.DisappearingTypeAfterSend,
			Timer: jsontime.MS(d.Event.Timer),
		}
	}
}

// SendEdit implements bridge.EditSender.
func (c *Connector) SendEdit(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	ctx = c.mctx(ctx)
	target, err := eventID(d.Target)
	if err != nil {
		return "", err
	}
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return "", err
	}
	content := fromContent(d.Event.Content)
	content.SetEdit(target)
	return c.sendEvent(ctx, intent, room, event.EventMessage, content, d)
}

// SendReaction implements bridge.ReactionSender.
func (c *Connector) SendReaction(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	ctx = c.mctx(ctx)
	target, err := eventID(d.Target)
	if err != nil {
		return "", err
	}
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return "", err
	}
	content := &event.ReactionEventContent{RelatesTo: event.RelatesTo{
		Type: event.RelAnnotation, EventID: target, Key: d.Event.Reaction,
	}}
	return c.sendEvent(ctx, intent, room, event.EventReaction, content, d)
}

// SendDelete implements bridge.DeleteSender: the ghost redacts its own
// event; if the homeserver refuses, the bot (room admin) redacts it.
func (c *Connector) SendDelete(ctx context.Context, d *bridge.Delivery) error {
	ctx = c.mctx(ctx)
	target, err := eventID(d.Target)
	if err != nil {
		return err
	}
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return err
	}
	_, err = intent.RedactEvent(ctx, room, target, mautrix.ReqRedact{TxnID: txnID(d)})
	if errors.Is(err, mautrix.MForbidden) {
		_, err = c.as.BotIntent().RedactEvent(ctx, room, target, mautrix.ReqRedact{TxnID: txnID(d)})
	}
	return classify("redact", err)
}

// SendReadReceipt implements bridge.ReadReceiptSender.
func (c *Connector) SendReadReceipt(ctx context.Context, d *bridge.Delivery) error {
	ctx = c.mctx(ctx)
	target, err := eventID(d.Target)
	if err != nil {
		return err
	}
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return err
	}
	return classify("read receipt", intent.MarkRead(ctx, room, target))
}

// typingTimeout is how long a typing notification lasts unless renewed.
const typingTimeout = 30 * time.Second

// SendTyping implements bridge.TypingSender. A typing notification
// carries no network, so it is shown by the ghost that last sent for that
// sender in the room; before that ghost has sent anything it is dropped.
func (c *Connector) SendTyping(ctx context.Context, chat bridge.ChatID, sender bridge.Sender, typing bool) error {
	ctx = c.mctx(ctx)
	room, err := roomID(chat)
	if err != nil {
		return err
	}
	c.mu.RLock()
	ghost, ok := c.typers[typerKey{room, sender.ID}]
	c.mu.RUnlock()
	if !ok {
		return nil
	}
	_, err = c.as.Intent(ghost).UserTyping(ctx, room, typing, typingTimeout)
	return classify("typing", err)
}

// SendMedia implements bridge.MediaSender: it fetches the attachment from
// its source connector, uploads it to the homeserver's media repository
// and sends it as the ghost.
func (c *Connector) SendMedia(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	ctx = c.mctx(ctx)
	intent, room, err := c.senderIntent(ctx, d)
	if err != nil {
		return "", err
	}
	in := d.Event.Content
	media := in.Media
	data, err := d.ReadMedia(ctx, MaxMediaSize)
	if err != nil {
		return "", err
	}
	mime := media.MimeType
	if mime == "" {
		mime = http.DetectContentType(data)
	}
	fileName := media.FileName
	if fileName == "" {
		fileName = defaultFileName(in.Type)
	}
	size := len(data)
	// In an encrypted room the attachment is encrypted before upload (the
	// homeserver gets only ciphertext, without name or type) and the event,
	// itself encrypted, carries the key in content.file.
	encrypted, err := c.IsEncrypted(ctx, bridge.ChatID(room))
	if err != nil {
		return "", err
	}
	var file *event.EncryptedFileInfo
	upload := mautrix.ReqUploadMedia{ContentBytes: data, ContentType: mime, FileName: fileName}
	if encrypted {
		if c.crypto == nil {
			return "", bridge.Permanent(fmt.Errorf("%w: room is encrypted", ErrEncryptionUnavailable))
		}
		file = encryptMedia(data)
		upload = mautrix.ReqUploadMedia{ContentBytes: data, ContentType: "application/octet-stream"}
	}
	up, err := intent.UploadMedia(ctx, upload)
	if err != nil {
		return "", classify("upload media", err)
	}
	content := &event.MessageEventContent{
		Body: fileName,
		Info: &event.FileInfo{
			MimeType: mime,
			Size:     size,
			Width:    media.Width,
			Height:   media.Height,
			Duration: int(media.Duration / time.Millisecond),
		},
	}
	if file != nil {
		file.URL = up.ContentURI.CUString()
		content.File = file
	} else {
		content.URL = up.ContentURI.CUString()
	}
	if in.Body != "" {
		content.Body, content.FileName = in.Body, fileName
		if in.HTML != "" {
			content.Format, content.FormattedBody = event.FormatHTML, in.HTML
		}
	}
	typ := event.EventMessage
	switch in.Type {
	case bridge.MsgImage:
		content.MsgType = event.MsgImage
	case bridge.MsgVideo:
		content.MsgType = event.MsgVideo
	case bridge.MsgAudio:
		content.MsgType = event.MsgAudio
	case bridge.MsgVoice:
		content.MsgType = event.MsgAudio
		content.MSC3245Voice = &event.MSC3245Voice{}
		content.MSC1767Audio = voiceAudio(media) // content_voice.go
	case bridge.MsgSticker:
		typ = event.EventSticker
	default:
		content.MsgType = event.MsgFile
	}
	if d.ReplyTo != "" {
		content.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(d.ReplyTo))
	}
	c.addTimer(content, d)
	return c.sendEvent(ctx, intent, room, typ, content, d)
}

func defaultFileName(t bridge.MsgType) string {
	switch t {
	case bridge.MsgImage, bridge.MsgSticker:
		return "image"
	case bridge.MsgVideo:
		return "video"
	case bridge.MsgAudio, bridge.MsgVoice:
		return "audio"
	}
	return "file"
}

// DownloadMedia implements bridge.MediaDownloader: Media.Ref is an mxc://
// URI, or for an attachment of an encrypted room the JSON of its
// content.file, in which case the download is decrypted (and its hash
// checked) before anything is returned. It uses authenticated media when
// the homeserver offers it.
func (c *Connector) DownloadMedia(ctx context.Context, media *bridge.Media) (io.ReadCloser, error) {
	ctx = c.mctx(ctx)
	uri, file, err := decodeMediaRef(media.Ref)
	if err != nil {
		return nil, err
	}
	bot := c.as.BotClient()
	var path mautrix.PrefixableURLPath
	if c.as.SpecVersions.Supports(mautrix.FeatureAuthenticatedMedia) {
		path = mautrix.ClientURLPath{"v1", "media", "download", uri.Homeserver, uri.FileID}
	} else {
		path = mautrix.MediaURLPath{"v3", "download", uri.Homeserver, uri.FileID}
	}
	_, resp, err := bot.MakeFullRequestWithResp(ctx, mautrix.FullRequest{
		Method:           http.MethodGet,
		URL:              bot.BuildURL(path),
		DontReadResponse: true,
	})
	if err != nil {
		return nil, classify("download media", err)
	}
	if resp.ContentLength > MaxMediaSize {
		_ = resp.Body.Close()
		return nil, bridge.Permanent(ErrMediaTooLarge)
	}
	if file != nil {
		defer resp.Body.Close()
		return decryptMedia(file, resp.Body)
	}
	return newLimitedBody(resp.Body, MaxMediaSize), nil
}
