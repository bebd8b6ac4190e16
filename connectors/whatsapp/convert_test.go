package whatsapp

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// unwrap runs a raw message through whatsmeow's own unwrapping, as it
// arrives in an *events.Message.
func unwrap(raw *waE2E.Message) *events.Message {
	return (&events.Message{Info: types.MessageInfo{ID: "X"}, RawMessage: raw}).UnwrapRaw()
}

func key(msgID string) *waCommon.MessageKey { return &waCommon.MessageKey{ID: proto.String(msgID)} }

// WhatsApp -> normalized model, for every message type.
func TestParseMessage(t *testing.T) {
	media := func(typ bridge.MsgType, mime, name, caption string) *bridge.Content {
		return &bridge.Content{Type: typ, Body: caption, Media: &bridge.Media{MimeType: mime, FileName: name, Size: 42}}
	}
	d := func(s uint32) time.Duration { return time.Duration(s) * time.Second }
	for _, tc := range []struct {
		name string
		raw  *waE2E.Message
		want incoming
		skip bool
	}{
		{name: "plain text", raw: text("hello"), want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgText, Body: "hello"}}},
		{name: "formatted text", raw: text("*bold* _it_ ~gone~ ```code```"), want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{
			Type: bridge.MsgText, Body: "*bold* _it_ ~gone~ ```code```",
			HTML: "<strong>bold</strong> <em>it</em> <del>gone</del> <code>code</code>"}}},
		{name: "reply", raw: &waE2E.Message{ExtendedTextMessage: &waE2E.ExtendedTextMessage{Text: proto.String("yes"),
			ContextInfo: &waE2E.ContextInfo{StanzaID: proto.String("Q1"), Participant: proto.String(contactJID.String()), QuotedMessage: text("really?")}}},
			want: incoming{Kind: bridge.KindMessage, ReplyTo: "Q1", Content: &bridge.Content{Type: bridge.MsgText, Body: "yes"}}},
		{name: "ephemeral", raw: ephemeral("poof", 604800),
			want: incoming{Kind: bridge.KindMessage, Timer: 7 * 24 * time.Hour, Content: &bridge.Content{Type: bridge.MsgText, Body: "poof"}}},
		{name: "image", raw: &waE2E.Message{ImageMessage: &waE2E.ImageMessage{Caption: proto.String("pic"), Mimetype: proto.String("image/jpeg"),
			FileLength: proto.Uint64(42), DirectPath: proto.String("/p"), MediaKey: []byte("k"), Width: proto.Uint32(640), Height: proto.Uint32(480)}},
			want: incoming{Kind: bridge.KindMessage, Content: func() *bridge.Content {
				c := media(bridge.MsgImage, "image/jpeg", "image.jpeg", "pic")
				c.Media.Width, c.Media.Height = 640, 480
				return c
			}()}},
		{name: "video", raw: &waE2E.Message{VideoMessage: &waE2E.VideoMessage{Mimetype: proto.String("video/mp4"), FileLength: proto.Uint64(42),
			DirectPath: proto.String("/p"), MediaKey: []byte("k"), Seconds: proto.Uint32(9)}},
			want: incoming{Kind: bridge.KindMessage, Content: func() *bridge.Content {
				c := media(bridge.MsgVideo, "video/mp4", "video.mp4", "")
				c.Media.Duration = d(9)
				return c
			}()}},
		{name: "audio", raw: &waE2E.Message{AudioMessage: &waE2E.AudioMessage{Mimetype: proto.String("audio/mpeg"), FileLength: proto.Uint64(42),
			DirectPath: proto.String("/p"), MediaKey: []byte("k"), Seconds: proto.Uint32(200)}},
			want: incoming{Kind: bridge.KindMessage, Content: func() *bridge.Content {
				c := media(bridge.MsgAudio, "audio/mpeg", "audio.mpeg", "")
				c.Media.Duration = d(200)
				return c
			}()}},
		{name: "voice note", raw: &waE2E.Message{AudioMessage: &waE2E.AudioMessage{Mimetype: proto.String("audio/ogg; codecs=opus"), FileLength: proto.Uint64(42),
			DirectPath: proto.String("/p"), MediaKey: []byte("k"), Seconds: proto.Uint32(4), PTT: proto.Bool(true)}},
			want: incoming{Kind: bridge.KindMessage, Content: func() *bridge.Content {
				c := media(bridge.MsgVoice, "audio/ogg; codecs=opus", "voice-message.ogg", "")
				c.Media.Duration = d(4)
				return c
			}()}},
		{name: "document with caption", raw: &waE2E.Message{DocumentWithCaptionMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{
			DocumentMessage: &waE2E.DocumentMessage{FileName: proto.String("report.pdf"), Caption: proto.String("see"), Mimetype: proto.String("application/pdf"),
				FileLength: proto.Uint64(42), DirectPath: proto.String("/p"), MediaKey: []byte("k")}}}},
			want: incoming{Kind: bridge.KindMessage, Content: media(bridge.MsgFile, "application/pdf", "report.pdf", "see")}},
		{name: "sticker", raw: &waE2E.Message{StickerMessage: &waE2E.StickerMessage{Mimetype: proto.String("image/webp"), FileLength: proto.Uint64(42),
			DirectPath: proto.String("/p"), MediaKey: []byte("k")}},
			want: incoming{Kind: bridge.KindMessage, Content: media(bridge.MsgSticker, "image/webp", "sticker.webp", "")}},
		{name: "location", raw: &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(48.8584), DegreesLongitude: proto.Float64(2.2945), Name: proto.String("Tower")}},
			want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgLocation, Body: "Location: Tower (geo:48.858400,2.294500)",
				Location: &bridge.Location{Lat: 48.8584, Long: 2.2945, Name: "Tower"}}}},
		{name: "location with address", raw: &waE2E.Message{LocationMessage: &waE2E.LocationMessage{DegreesLatitude: proto.Float64(1), DegreesLongitude: proto.Float64(2), Name: proto.String("Cafe"), Address: proto.String("1 Main St")}},
			want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgLocation, Body: "Location: Cafe, 1 Main St (geo:1.000000,2.000000)",
				Location: &bridge.Location{Lat: 1, Long: 2, Name: "Cafe, 1 Main St"}}}},
		{name: "live location", raw: &waE2E.Message{LiveLocationMessage: &waE2E.LiveLocationMessage{DegreesLatitude: proto.Float64(1.5), DegreesLongitude: proto.Float64(-2.25)}},
			want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgLocation, Body: "Live location (last known position; open WhatsApp to follow it): geo:1.500000,-2.250000",
				Location: &bridge.Location{Lat: 1.5, Long: -2.25, Live: true}}}},
		{name: "poll", raw: &waE2E.Message{PollCreationMessageV3: &waE2E.PollCreationMessage{Name: proto.String("lunch?"), SelectableOptionsCount: proto.Uint32(0),
			Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("soup")}, {OptionName: proto.String("salad")}}}},
			want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgPoll, Body: "Poll: lunch?\n1. soup\n2. salad\n(up to 2 choices)",
				Poll: &bridge.Poll{Question: "lunch?", Options: []string{"soup", "salad"}, MaxSelections: 2}}}},
		{name: "vote (decrypted later)", raw: &waE2E.Message{PollUpdateMessage: &waE2E.PollUpdateMessage{PollCreationMessageKey: key("P1"), Vote: &waE2E.PollEncValue{EncPayload: []byte("x")}}},
			want: incoming{Kind: bridge.KindMessage, ReplyTo: "P1", Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{}}}},
		{name: "contact card (name only)", raw: &waE2E.Message{ContactMessage: &waE2E.ContactMessage{DisplayName: proto.String("Erin"), Vcard: proto.String("BEGIN:VCARD\nTEL:+14155550177\nEND:VCARD")}},
			want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgNotice, Body: "Shared a contact card: Erin (contact cards are not bridged)"}}},
		{name: "reaction", raw: &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Key: key("T1"), Text: proto.String("😂")}},
			want: incoming{Kind: bridge.KindReaction, Target: "T1", Reaction: "😂"}},
		{name: "reaction removed", raw: &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Key: key("T1"), Text: proto.String("")}},
			want: incoming{Kind: bridge.KindReaction, Target: "T1"}},
		{name: "edit", raw: &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
			Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), Key: key("T1"), EditedMessage: text("fixed")}}}},
			want: incoming{Kind: bridge.KindEdit, Target: "T1", Content: &bridge.Content{Type: bridge.MsgText, Body: "fixed"}}},
		{name: "revoke", raw: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(), Key: key("T1")}},
			want: incoming{Kind: bridge.KindDelete, Target: "T1"}},
		{name: "chat timer", raw: timerSetting(86400), want: incoming{ChatTimer: func() *time.Duration { d := 24 * time.Hour; return &d }()}},
		{name: "history sync notification", raw: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_HISTORY_SYNC_NOTIFICATION.Enum()}}, skip: true},
		{name: "key distribution only", raw: &waE2E.Message{SenderKeyDistributionMessage: &waE2E.SenderKeyDistributionMessage{GroupID: proto.String("g")}}, skip: true},
		{name: "poll without options (unsupported)", raw: &waE2E.Message{PollCreationMessage: &waE2E.PollCreationMessage{Name: proto.String("lunch?")}},
			want: incoming{Kind: bridge.KindMessage, Content: &bridge.Content{Type: bridge.MsgNotice, Body: "This WhatsApp message type is not supported by the bridge; open WhatsApp to see it."}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseMessage(unwrap(tc.raw).Message)
			if tc.skip {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			if got.Media != nil {
				require.Equal(t, "/p", got.Media.DirectPath)
				require.Equal(t, []byte("k"), got.Media.MediaKey)
				require.Equal(t, string(tc.want.Content.Type), got.Media.Type)
				got.Media = nil
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// Normalized model -> WhatsApp, for every message type.
func TestBuildMessage(t *testing.T) {
	up := whatsmeow.UploadResponse{URL: "u", DirectPath: "/d", MediaKey: []byte("k"), FileEncSHA256: []byte("e"), FileSHA256: []byte("s"), FileLength: 7}
	for _, tc := range []struct {
		name    string
		content *bridge.Content
		out     outgoing
		check   func(t *testing.T, m *waE2E.Message)
	}{
		{"text", &bridge.Content{Type: bridge.MsgText, Body: "hi"}, outgoing{}, func(t *testing.T, m *waE2E.Message) {
			require.Equal(t, "hi", m.GetConversation())
		}},
		{"html", &bridge.Content{Type: bridge.MsgText, Body: "b i s c", HTML: "<strong>b</strong> <i>i</i> <del>s</del> <code>c</code><pre><code>x := 1\n</code></pre>"}, outgoing{},
			func(t *testing.T, m *waE2E.Message) {
				require.Equal(t, "*b* _i_ ~s~ ```c```\n```\nx := 1\n```", m.GetConversation())
			}},
		{"link", &bridge.Content{Type: bridge.MsgText, Body: "x", HTML: `see <a href="https://example.org">the docs</a>`}, outgoing{}, func(t *testing.T, m *waE2E.Message) {
			require.Equal(t, "see the docs (https://example.org)", m.GetConversation())
		}},
		{"emote", &bridge.Content{Type: bridge.MsgEmote, Body: "waves"}, outgoing{Prefix: "Bob: "}, func(t *testing.T, m *waE2E.Message) {
			require.Equal(t, "Bob: _waves_", m.GetConversation())
		}},
		{"notice", &bridge.Content{Type: bridge.MsgNotice, Body: "fyi"}, outgoing{}, func(t *testing.T, m *waE2E.Message) {
			require.Equal(t, "fyi", m.GetConversation())
		}},
		{"reply with timer", &bridge.Content{Type: bridge.MsgText, Body: "yes"}, outgoing{ReplyTo: "Q", ReplyParticipant: "p@s.whatsapp.net", Expiration: 24 * time.Hour},
			func(t *testing.T, m *waE2E.Message) {
				ci := m.GetExtendedTextMessage().GetContextInfo()
				require.Equal(t, "yes", m.GetExtendedTextMessage().GetText())
				require.Equal(t, "Q", ci.GetStanzaID())
				require.Equal(t, "p@s.whatsapp.net", ci.GetParticipant())
				require.Equal(t, uint32(86400), ci.GetExpiration())
			}},
		{"image", &bridge.Content{Type: bridge.MsgImage, Body: "cap", Media: &bridge.Media{MimeType: "image/png", FileName: "a.png", Width: 3, Height: 2}}, outgoing{Prefix: "Bob: "},
			func(t *testing.T, m *waE2E.Message) {
				im := m.GetImageMessage()
				require.Equal(t, "Bob: cap", im.GetCaption())
				require.Equal(t, "image/png", im.GetMimetype())
				require.Equal(t, "/d", im.GetDirectPath())
				require.Equal(t, []byte("k"), im.GetMediaKey())
				require.Equal(t, uint64(7), im.GetFileLength())
				require.Equal(t, uint32(3), im.GetWidth())
			}},
		{"image named as caption", &bridge.Content{Type: bridge.MsgImage, Body: "a.png", Media: &bridge.Media{MimeType: "image/png", FileName: "a.png"}}, outgoing{},
			func(t *testing.T, m *waE2E.Message) { require.Nil(t, m.GetImageMessage().Caption) }},
		{"video", &bridge.Content{Type: bridge.MsgVideo, Media: &bridge.Media{MimeType: "video/mp4", Duration: 1500 * time.Millisecond}}, outgoing{},
			func(t *testing.T, m *waE2E.Message) { require.Equal(t, uint32(2), m.GetVideoMessage().GetSeconds()) }},
		{"audio", &bridge.Content{Type: bridge.MsgAudio, Media: &bridge.Media{MimeType: "audio/mpeg"}}, outgoing{},
			func(t *testing.T, m *waE2E.Message) { require.False(t, m.GetAudioMessage().GetPTT()) }},
		{"voice", &bridge.Content{Type: bridge.MsgVoice, Media: &bridge.Media{MimeType: "audio/ogg"}}, outgoing{},
			func(t *testing.T, m *waE2E.Message) { require.True(t, m.GetAudioMessage().GetPTT()) }},
		{"file", &bridge.Content{Type: bridge.MsgFile, Body: "the report", Media: &bridge.Media{MimeType: "application/pdf", FileName: "r.pdf"}}, outgoing{ReplyTo: "Q"},
			func(t *testing.T, m *waE2E.Message) {
				doc := m.GetDocumentMessage()
				require.Equal(t, "r.pdf", doc.GetFileName())
				require.Equal(t, "the report", doc.GetCaption())
				require.Equal(t, "Q", doc.GetContextInfo().GetStanzaID())
			}},
		{"sticker", &bridge.Content{Type: bridge.MsgSticker, Body: "sticker", Media: &bridge.Media{MimeType: "image/webp"}}, outgoing{},
			func(t *testing.T, m *waE2E.Message) {
				require.Equal(t, "image/webp", m.GetStickerMessage().GetMimetype())
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m *waE2E.Message
			if tc.content.Type.IsMedia() {
				m = buildMedia(tc.content, up, tc.out)
			} else {
				m = buildText(tc.content, tc.out)
			}
			tc.check(t, m)
			// What WhatsApp would hand the other side parses back to the
			// same type.
			back, ok := parseMessage(m)
			require.True(t, ok)
			want := tc.content.Type
			if want == bridge.MsgEmote || want == bridge.MsgNotice {
				want = bridge.MsgText // WhatsApp has neither
			}
			require.Equal(t, want, back.Content.Type)
		})
	}
}

func TestFormatToHTML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", ""},
		{"*bold*", "<strong>bold</strong>"},
		{"a *b* c", "a <strong>b</strong> c"},
		{"_it_, ~s~.", "<em>it</em>, <del>s</del>."},
		{"*_both_*", "<strong><em>both</em></strong>"},
		{"2*3*4", ""},
		{"* not bold *", ""},
		{"snake_case_name", ""},
		{"`inline`", "<code>inline</code>"},
		{"```\nfunc() {}\n```", "<pre><code>func() {}</code></pre>"},
		{"```*not bold*```", "<code>*not bold*</code>"},
		{"*<script>*", "<strong>&lt;script&gt;</strong>"},
		{"line *one*\nline two", "line <strong>one</strong><br>line two"},
		{"*across\nlines*", ""},
		{"unclosed ```code", ""},
	} {
		got, ok := FormatToHTML(tc.in)
		require.Equal(t, tc.want, got, "%q", tc.in)
		require.Equal(t, tc.want != "", ok, "%q", tc.in)
	}
}

func TestOwnMessageIDs(t *testing.T) {
	e := &Connector{}
	var err error
	e.keys, err = deriveKeys(secret)
	require.NoError(t, err)
	a := e.ownID("acct", "chat", "m1", "1")
	require.Equal(t, a, e.ownID("acct", "chat", "m1", "1"), "stable across retries")
	require.NotEqual(t, a, e.ownID("acct", "chat", "m1", "2"))
	require.True(t, e.isOwnID(a))
	require.Len(t, a, 22)
	for _, other := range []string{"3EB0C0FFEE0011223344AA", "ABCDEF", "", "3EB0" + strings.Repeat("Z", 18), "WAMSG1"} {
		require.False(t, e.isOwnID(other), other)
	}
}

// FuzzFormatToHTML checks the WhatsApp formatting parser never panics,
// returns valid UTF-8 for valid input, never lets markup through
// unescaped, and that HTMLToFormat accepts whatever it produces.
func FuzzFormatToHTML(f *testing.F) {
	for _, s := range []string{"*a*", "_b_ ~c~", "```x```", "```\ny\n```", "`z`", "*_~`nested`~_*", "a*b*c", "<b>*x*</b>", "*\n*", "```", "****"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := FormatToHTML(s)
		if !ok {
			if out != "" {
				t.Fatalf("unformatted text returned HTML %q", out)
			}
			return
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		stripped := out
		for _, tag := range []string{"<strong>", "</strong>", "<em>", "</em>", "<del>", "</del>", "<code>", "</code>", "<pre>", "</pre>", "<br>"} {
			stripped = strings.ReplaceAll(stripped, tag, "")
		}
		if strings.ContainsAny(stripped, "<>") {
			t.Fatalf("unescaped markup in %q (from %q)", out, s)
		}
		_ = HTMLToFormat(out)
		_, _ = parseMessage(&waE2E.Message{Conversation: proto.String(s)})
	})
}
