package whatsapp

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// incoming is a WhatsApp message converted to the normalized model. The
// connector fills in the leg, sender and IDs.
type incoming struct {
	Kind    bridge.Kind
	Content *bridge.Content
	// ReplyTo is the quoted message's ID (ContextInfo.StanzaID).
	ReplyTo string
	// Target is the message edited, reacted to or revoked.
	Target   string
	Reaction string
	// Timer is the message's disappearing timer (ContextInfo.Expiration).
	Timer time.Duration
	// ChatTimer is set when the message changes the chat's disappearing
	// timer (a protocol message); 0 turns it off.
	ChatTimer *time.Duration
	// Media describes the attachment; the connector turns it into a
	// bridge.Media.Ref for the account that received it.
	Media *mediaRef
	// Mentioned are the JIDs mentioned in the text ("@<number>" in the
	// text, which the connector replaces with names).
	Mentioned []string
	// ViewOnce is set for media marked view-once inside the message
	// (besides the view-once wrappers whatsmeow unwraps).
	ViewOnce bool
}

// mediaRef is what DownloadMedia needs to fetch and decrypt an attachment.
// It travels in bridge.Media.Ref (inside the router's sealed queue
// payload), never in a log line.
type mediaRef struct {
	Account    string `json:"a"`
	Type       string `json:"t"`
	DirectPath string `json:"p"`
	MediaKey   []byte `json:"k"`
	EncSHA256  []byte `json:"e"`
	SHA256     []byte `json:"s"`
	Length     uint64 `json:"l"`
}

const mediaRefPrefix = "wa1:"

func (m *mediaRef) encode() string {
	b, _ := json.Marshal(m)
	return mediaRefPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func decodeMediaRef(ref string) (*mediaRef, error) {
	raw, ok := strings.CutPrefix(ref, mediaRefPrefix)
	if !ok {
		return nil, ErrMediaRef
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, ErrMediaRef
	}
	var m mediaRef
	if err = json.Unmarshal(b, &m); err != nil || m.DirectPath == "" || len(m.MediaKey) == 0 {
		return nil, ErrMediaRef
	}
	return &m, nil
}

// downloadable rebuilds the message whatsmeow.Download needs (it picks
// the decryption info from the message's type).
func (m *mediaRef) downloadable() whatsmeow.DownloadableMessage {
	common := func() (*string, []byte, []byte, []byte, *uint64) {
		return proto.String(m.DirectPath), m.MediaKey, m.EncSHA256, m.SHA256, proto.Uint64(m.Length)
	}
	p, k, e, s, l := common()
	switch bridge.MsgType(m.Type) {
	case bridge.MsgImage:
		return &waE2E.ImageMessage{DirectPath: p, MediaKey: k, FileEncSHA256: e, FileSHA256: s, FileLength: l}
	case bridge.MsgVideo:
		return &waE2E.VideoMessage{DirectPath: p, MediaKey: k, FileEncSHA256: e, FileSHA256: s, FileLength: l}
	case bridge.MsgAudio, bridge.MsgVoice:
		return &waE2E.AudioMessage{DirectPath: p, MediaKey: k, FileEncSHA256: e, FileSHA256: s, FileLength: l}
	case bridge.MsgSticker:
		return &waE2E.StickerMessage{DirectPath: p, MediaKey: k, FileEncSHA256: e, FileSHA256: s, FileLength: l}
	default:
		return &waE2E.DocumentMessage{DirectPath: p, MediaKey: k, FileEncSHA256: e, FileSHA256: s, FileLength: l}
	}
}

// mediaFields is what every WhatsApp media message has.
type mediaFields interface {
	GetDirectPath() string
	GetMediaKey() []byte
	GetFileEncSHA256() []byte
	GetFileSHA256() []byte
	GetFileLength() uint64
	GetMimetype() string
	GetContextInfo() *waE2E.ContextInfo
}

// parseMessage converts a WhatsApp message (already unwrapped by
// whatsmeow: events.Message.Message) into the normalized model. ok is
// false for messages that carry nothing to bridge (protocol messages
// other than edits, revokes and timer changes; key shares; reaction
// removals).
func parseMessage(msg *waE2E.Message) (in incoming, ok bool) {
	if msg == nil {
		return in, false
	}
	in.Kind = bridge.KindMessage
	var ctxInfo *waE2E.ContextInfo
	switch {
	case msg.ProtocolMessage != nil:
		return parseProtocol(msg.ProtocolMessage)
	case msg.ReactionMessage != nil:
		r := msg.ReactionMessage
		if r.GetKey().GetID() == "" {
			return in, false
		}
		// An empty text removes the sender's reaction (see handleMessage).
		return incoming{Kind: bridge.KindReaction, Target: r.GetKey().GetID(), Reaction: r.GetText()}, true
	case msg.Conversation != nil:
		in.Content = textContent(msg.GetConversation())
	case msg.ExtendedTextMessage != nil:
		in.Content = textContent(msg.ExtendedTextMessage.GetText())
		ctxInfo = msg.ExtendedTextMessage.GetContextInfo()
	case msg.ImageMessage != nil:
		m := msg.ImageMessage
		in.ViewOnce = m.GetViewOnce()
		in.Content, in.Media = mediaContent(bridge.MsgImage, m, m.GetCaption(), "")
		in.Content.Media.Width, in.Content.Media.Height = int(m.GetWidth()), int(m.GetHeight())
		ctxInfo = m.GetContextInfo()
	case msg.VideoMessage != nil:
		m := msg.VideoMessage
		in.ViewOnce = m.GetViewOnce()
		in.Content, in.Media = mediaContent(bridge.MsgVideo, m, m.GetCaption(), "")
		in.Content.Media.Width, in.Content.Media.Height = int(m.GetWidth()), int(m.GetHeight())
		in.Content.Media.Duration = time.Duration(m.GetSeconds()) * time.Second
		ctxInfo = m.GetContextInfo()
	case msg.AudioMessage != nil:
		m := msg.AudioMessage
		in.ViewOnce = m.GetViewOnce()
		typ := bridge.MsgAudio
		if m.GetPTT() {
			typ = bridge.MsgVoice
		}
		in.Content, in.Media = mediaContent(typ, m, "", "")
		in.Content.Media.Duration = time.Duration(m.GetSeconds()) * time.Second
		in.Content.Media.Waveform = waveformFromWhatsApp(m.GetWaveform())
		ctxInfo = m.GetContextInfo()
	case msg.DocumentMessage != nil:
		m := msg.DocumentMessage
		name := m.GetFileName()
		if name == "" {
			name = m.GetTitle()
		}
		in.Content, in.Media = mediaContent(bridge.MsgFile, m, m.GetCaption(), name)
		ctxInfo = m.GetContextInfo()
	case msg.StickerMessage != nil:
		m := msg.StickerMessage
		in.Content, in.Media = mediaContent(bridge.MsgSticker, m, "", "sticker.webp")
		in.Content.Media.Width, in.Content.Media.Height = int(m.GetWidth()), int(m.GetHeight())
		ctxInfo = m.GetContextInfo()
	case msg.LocationMessage != nil:
		m := msg.LocationMessage
		name := m.GetName()
		if name == "" {
			name = m.GetAddress()
		} else if addr := m.GetAddress(); addr != "" && addr != name {
			name += ", " + addr
		}
		in.Content = locationContent(&bridge.Location{Lat: m.GetDegreesLatitude(), Long: m.GetDegreesLongitude(), Name: name})
		ctxInfo = m.GetContextInfo()
	case msg.LiveLocationMessage != nil:
		// Live locations cross as their last known position: the bridge
		// does not follow the updates.
		m := msg.LiveLocationMessage
		in.Content = locationContent(&bridge.Location{Lat: m.GetDegreesLatitude(), Long: m.GetDegreesLongitude(), Name: m.GetCaption(), Live: true})
		ctxInfo = m.GetContextInfo()
	case len(pollCreation(msg).GetOptions()) > 0:
		m := pollCreation(msg)
		in.Content = pollContent(m)
		ctxInfo = m.GetContextInfo()
	case msg.PollUpdateMessage != nil:
		// The vote is encrypted: handleMessage decrypts it (resolveVote).
		if msg.PollUpdateMessage.GetPollCreationMessageKey().GetID() == "" {
			return in, false
		}
		in.Content = &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{}}
		in.ReplyTo = msg.PollUpdateMessage.GetPollCreationMessageKey().GetID()
	case msg.ContactMessage != nil:
		// The vCard holds phone numbers: only the name crosses.
		in.Content = &bridge.Content{Type: bridge.MsgNotice, Body: "Shared a contact card: " + msg.ContactMessage.GetDisplayName() + " (contact cards are not bridged)"}
		ctxInfo = msg.ContactMessage.GetContextInfo()
	default:
		if isSilent(msg) {
			return in, false
		}
		in.Content = &bridge.Content{Type: bridge.MsgNotice, Body: "This WhatsApp message type is not supported by the bridge; open WhatsApp to see it."}
	}
	if ctxInfo != nil {
		in.ReplyTo = ctxInfo.GetStanzaID()
		if exp := ctxInfo.GetExpiration(); exp > 0 {
			in.Timer = time.Duration(exp) * time.Second
		}
		in.Mentioned = ctxInfo.GetMentionedJID()
	}
	return in, true
}

func parseProtocol(p *waE2E.ProtocolMessage) (incoming, bool) {
	switch p.GetType() {
	case waE2E.ProtocolMessage_REVOKE:
		if p.GetKey().GetID() == "" {
			return incoming{}, false
		}
		return incoming{Kind: bridge.KindDelete, Target: p.GetKey().GetID()}, true
	case waE2E.ProtocolMessage_MESSAGE_EDIT:
		edited, ok := parseMessage(p.GetEditedMessage())
		if !ok || edited.Kind != bridge.KindMessage || p.GetKey().GetID() == "" {
			return incoming{}, false
		}
		return incoming{Kind: bridge.KindEdit, Target: p.GetKey().GetID(), Content: edited.Content, Mentioned: edited.Mentioned}, true
	case waE2E.ProtocolMessage_EPHEMERAL_SETTING:
		d := time.Duration(p.GetEphemeralExpiration()) * time.Second
		return incoming{ChatTimer: &d}, true
	}
	return incoming{}, false
}

// isSilent reports messages that are bookkeeping, not something a person
// sent: nothing set but key distribution and message context.
func isSilent(msg *waE2E.Message) bool {
	silent := true
	msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		switch fd.Name() {
		case "messageContextInfo", "senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage":
			return true
		}
		silent = false
		return false
	})
	return silent
}

func textContent(text string) *bridge.Content {
	c := &bridge.Content{Type: bridge.MsgText, Body: text}
	if h, ok := FormatToHTML(text); ok {
		c.HTML = h
	}
	return c
}

func mediaContent(typ bridge.MsgType, m mediaFields, caption, fileName string) (*bridge.Content, *mediaRef) {
	c := textContent(caption)
	c.Type = typ
	c.Media = &bridge.Media{MimeType: m.GetMimetype(), FileName: fileName, Size: int64(m.GetFileLength())}
	if c.Media.FileName == "" {
		c.Media.FileName = defaultFileName(typ, m.GetMimetype())
	}
	return c, &mediaRef{
		Type: string(typ), DirectPath: m.GetDirectPath(), MediaKey: m.GetMediaKey(),
		EncSHA256: m.GetFileEncSHA256(), SHA256: m.GetFileSHA256(), Length: m.GetFileLength(),
	}
}

func defaultFileName(typ bridge.MsgType, mime string) string {
	ext := ""
	if _, sub, ok := strings.Cut(strings.SplitN(mime, ";", 2)[0], "/"); ok {
		ext = "." + strings.TrimSpace(sub)
	}
	switch typ {
	case bridge.MsgImage:
		return "image" + ext
	case bridge.MsgVideo:
		return "video" + ext
	case bridge.MsgVoice:
		return "voice-message" + ext
	case bridge.MsgAudio:
		return "audio" + ext
	case bridge.MsgSticker:
		return "sticker" + ext
	}
	return "file" + ext
}

// locationContent is the normalized form of a location; its body is the
// readable text.
func locationContent(loc *bridge.Location) *bridge.Content {
	c := &bridge.Content{Type: bridge.MsgLocation, Location: loc}
	c.Body = c.PlainText()
	return c
}

// waveformFromWhatsApp scales WhatsApp's waveform (samples 0–100) to the
// bridge's (0–255).
func waveformFromWhatsApp(w []byte) []byte {
	if len(w) == 0 {
		return nil
	}
	out := make([]byte, len(w))
	for i, v := range w {
		out[i] = byte(min(int(v), 100) * 255 / 100)
	}
	return out
}

// waveformToWhatsApp scales the bridge's waveform (0–255) to WhatsApp's
// 64 samples of 0–100, resampling by averaging.
func waveformToWhatsApp(w []byte) []byte {
	if len(w) == 0 {
		return nil
	}
	const n = 64
	out := make([]byte, n)
	for i := range out {
		lo, hi := i*len(w)/n, (i+1)*len(w)/n
		if hi <= lo {
			hi = lo + 1
		}
		sum := 0
		for _, v := range w[lo:hi] {
			sum += int(v)
		}
		out[i] = byte(sum / (hi - lo) * 100 / 255)
	}
	return out
}

// isOggOpus reports whether data is an Ogg stream whose first page holds
// an Opus header: what WhatsApp plays as a voice note.
func isOggOpus(data []byte) bool {
	if len(data) < 36 || string(data[:4]) != "OggS" {
		return false
	}
	segs := int(data[26])
	start := 27 + segs
	return len(data) >= start+8 && string(data[start:start+8]) == "OpusHead"
}

// isWebP reports whether data is a WebP image (what WhatsApp shows as a
// sticker).
func isWebP(data []byte) bool {
	return len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP"
}

// outgoing is what buildMessage needs besides the content.
type outgoing struct {
	// Prefix goes before the body (the sender's name on the relay).
	Prefix string
	// ReplyTo and ReplyParticipant quote a message (empty: no reply).
	ReplyTo          string
	ReplyParticipant string
	// Expiration is the chat's disappearing timer, which WhatsApp clients
	// expect on every message of such a chat.
	Expiration time.Duration
}

// bodyText is the WhatsApp text of normalized content: the HTML turned
// into WhatsApp formatting when there is HTML, else the body.
func bodyText(c *bridge.Content) string {
	if c == nil {
		return ""
	}
	if c.HTML != "" {
		if t := HTMLToFormat(c.HTML); strings.TrimSpace(t) != "" {
			return t
		}
	}
	return c.Body
}

func (o *outgoing) contextInfo() *waE2E.ContextInfo {
	if o.ReplyTo == "" && o.Expiration <= 0 {
		return nil
	}
	ci := &waE2E.ContextInfo{}
	if o.ReplyTo != "" {
		ci.StanzaID = proto.String(o.ReplyTo)
		ci.QuotedMessage = &waE2E.Message{Conversation: proto.String("")}
		if o.ReplyParticipant != "" {
			ci.Participant = proto.String(o.ReplyParticipant)
		}
	}
	if o.Expiration > 0 {
		ci.Expiration = proto.Uint32(uint32(o.Expiration / time.Second))
	}
	return ci
}

// buildText is the WhatsApp message for text content.
func buildText(c *bridge.Content, o outgoing) *waE2E.Message {
	text := bodyText(c)
	if c != nil && c.Type == bridge.MsgEmote {
		text = "_" + strings.TrimSpace(text) + "_"
	}
	text = o.Prefix + text
	ci := o.contextInfo()
	if ci == nil {
		return &waE2E.Message{Conversation: proto.String(text)}
	}
	return &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String(text), ContextInfo: ci}}
}

// mediaType is the whatsmeow upload type of a message type.
func mediaType(t bridge.MsgType) whatsmeow.MediaType {
	switch t {
	case bridge.MsgImage, bridge.MsgSticker:
		return whatsmeow.MediaImage
	case bridge.MsgVideo:
		return whatsmeow.MediaVideo
	case bridge.MsgAudio, bridge.MsgVoice:
		return whatsmeow.MediaAudio
	}
	return whatsmeow.MediaDocument
}

// buildMedia is the WhatsApp message for an uploaded attachment.
func buildMedia(c *bridge.Content, up whatsmeow.UploadResponse, o outgoing) *waE2E.Message {
	caption := bodyText(c)
	if caption == c.Media.FileName {
		caption = ""
	}
	if o.Prefix != "" {
		caption = strings.TrimSpace(o.Prefix + caption)
	}
	var capPtr *string
	if caption != "" {
		capPtr = proto.String(caption)
	}
	mime := c.Media.MimeType
	ci := o.contextInfo()
	url, path := proto.String(up.URL), proto.String(up.DirectPath)
	length := proto.Uint64(up.FileLength)
	switch c.Type {
	case bridge.MsgImage:
		return &waE2E.Message{ImageMessage: &waE2E.ImageMessage{
			URL: url, DirectPath: path, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256,
			FileLength: length, Mimetype: proto.String(mime), Caption: capPtr, ContextInfo: ci,
			Width: dim(c.Media.Width), Height: dim(c.Media.Height),
		}}
	case bridge.MsgSticker:
		return &waE2E.Message{StickerMessage: &waE2E.StickerMessage{
			URL: url, DirectPath: path, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256,
			FileLength: length, Mimetype: proto.String(mime), ContextInfo: ci,
			Width: dim(c.Media.Width), Height: dim(c.Media.Height),
		}}
	case bridge.MsgVideo:
		return &waE2E.Message{VideoMessage: &waE2E.VideoMessage{
			URL: url, DirectPath: path, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256,
			FileLength: length, Mimetype: proto.String(mime), Caption: capPtr, ContextInfo: ci,
			Seconds: seconds(c.Media.Duration), Width: dim(c.Media.Width), Height: dim(c.Media.Height),
		}}
	case bridge.MsgAudio, bridge.MsgVoice:
		return &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
			URL: url, DirectPath: path, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256,
			FileLength: length, Mimetype: proto.String(mime), ContextInfo: ci,
			Seconds: seconds(c.Media.Duration), PTT: proto.Bool(c.Type == bridge.MsgVoice),
			Waveform: voiceWaveform(c),
		}}
	}
	name := c.Media.FileName
	if name == "" {
		name = defaultFileName(c.Type, mime)
	}
	return &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{
		URL: url, DirectPath: path, MediaKey: up.MediaKey, FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256,
		FileLength: length, Mimetype: proto.String(mime), Caption: capPtr, ContextInfo: ci,
		FileName: proto.String(name), Title: proto.String(name),
	}}
}

func voiceWaveform(c *bridge.Content) []byte {
	if c.Type != bridge.MsgVoice {
		return nil
	}
	return waveformToWhatsApp(c.Media.Waveform)
}

func dim(v int) *uint32 {
	if v <= 0 {
		return nil
	}
	return proto.Uint32(uint32(v))
}

func seconds(d time.Duration) *uint32 {
	if d <= 0 {
		return nil
	}
	return proto.Uint32(uint32((d + time.Second - 1) / time.Second))
}

// userE164 returns the E.164 number of a phone-number JID ("" for groups,
// LIDs and other servers).
func userE164(jid types.JID) string {
	if jid.Server != types.DefaultUserServer || jid.User == "" {
		return ""
	}
	return "+" + jid.User
}
