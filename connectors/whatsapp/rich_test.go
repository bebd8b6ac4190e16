package whatsapp

import (
	"crypto/sha256"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
)

// oggOpus is the start of an Ogg Opus file (first page: OpusHead).
var oggOpus = append([]byte("OggS\x00\x02"+strings.Repeat("\x00", 20)+"\x01\x13OpusHead\x01\x01"), make([]byte, 64)...)

// webp is the start of a WebP image.
var webp = append([]byte("RIFF\x20\x00\x00\x00WEBPVP8 "), make([]byte, 32)...)

func hashOf(option string) []byte {
	h := sha256.Sum256([]byte(option))
	return h[:]
}

// contactVote is a contact's encrypted vote (as the fake encrypts it) in
// the poll pollID for the options named.
func contactVote(f *fakeClient, pollID string, options ...string) *waE2E.Message {
	vote := &waE2E.PollVoteMessage{}
	for _, o := range options {
		vote.SelectedOptions = append(vote.SelectedOptions, hashOf(o))
	}
	plain, err := proto.Marshal(vote)
	if err != nil {
		panic(err)
	}
	return &waE2E.Message{PollUpdateMessage: &waE2E.PollUpdateMessage{
		PollCreationMessageKey: &waCommon.MessageKey{ID: proto.String(pollID), RemoteJID: proto.String(contactJID.String())},
		Vote:                   &waE2E.PollEncValue{EncPayload: fakeVoteCipher(plain), EncIV: []byte("iv")},
	}}
}

// TestRichContentBothWays: a poll with votes, a location (and a live
// location), a voice note with its waveform and a sticker cross from
// WhatsApp to Matrix and back, with the right types and fields; a vote
// in a poll the bridge never saw is not bridged; view-once media is
// refused with a notice; and no option text, view-once reference or
// phone number is stored in the database or logged.
func TestRichContentBothWays(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			e := newEnv(t, db.opts...)
			f := e.login(alice, aliceJID)
			require.True(t, f.dispatch(message(contactJID, contactJID, "WA0", text("hello"))))
			e.mx.WaitSent(1, 5*time.Second)
			_, mxLeg := e.conversationOf(e.chatOf(alice, contactJID))
			n := 1
			next := func() bridgetest.Sent {
				t.Helper()
				n++
				s := e.mx.WaitSent(n, 5*time.Second)
				require.Len(t, s, n)
				return s[n-1]
			}
			sentN := 0
			nextWA := func() sentMessage {
				t.Helper()
				sentN++
				s := f.waitSent(sentN)
				require.Len(t, s, sentN)
				return s[sentN-1]
			}
			recv := func(evt *bridge.Event) {
				t.Helper()
				evt.Kind, evt.Source, evt.Sender = bridge.KindMessage, mxLeg, bridge.Sender{ID: alice, DisplayName: "Alice"}
				require.NoError(t, e.mx.Receive(e.ctx, evt))
			}

			// A WhatsApp poll, and a contact's vote in it.
			require.True(t, f.dispatch(message(contactJID, contactJID, "WAPOLL", &waE2E.Message{PollCreationMessageV3: &waE2E.PollCreationMessage{
				Name: proto.String("Lunch where?"), SelectableOptionsCount: proto.Uint32(1),
				Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Pizza")}, {OptionName: proto.String("Sushi")}, {OptionName: proto.String("Tacos")}},
			}})))
			s := next()
			ct := s.Delivery.Event.Content
			require.Equal(t, bridge.MsgPoll, ct.Type)
			require.Equal(t, &bridge.Poll{Question: "Lunch where?", Options: []string{"Pizza", "Sushi", "Tacos"}, MaxSelections: 1}, ct.Poll)
			require.Equal(t, "Poll: Lunch where?\n1. Pizza\n2. Sushi\n3. Tacos", ct.Body)
			pollOnMatrix := s.RemoteID

			require.True(t, f.dispatch(message(contactJID, contactJID, "WAVOTE-UNKNOWN", contactVote(f, "NEVER-SEEN", "Pizza"))))
			require.True(t, f.dispatch(message(contactJID, contactJID, "WAVOTE1", contactVote(f, "WAPOLL", "Sushi"))))
			s = next()
			require.Equal(t, "WAVOTE1", string(s.Delivery.Event.SourceID), "the vote in an unknown poll was not bridged")
			require.Equal(t, bridge.MsgPollVote, s.Delivery.Event.Content.Type)
			require.Equal(t, []int{1}, s.Delivery.Event.Content.Poll.Selected)
			require.Equal(t, pollOnMatrix, s.Delivery.ReplyTo, "the vote names the poll as Matrix knows it")

			// Alice votes on Matrix: a WhatsApp vote for the option's hash.
			recv(&bridge.Event{SourceID: "$vote1", ReplyTo: pollOnMatrix, Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{2}}}})
			out := nextWA()
			upd := out.msg.GetPollUpdateMessage()
			require.NotNil(t, upd, "a vote, not a text")
			require.Equal(t, "WAPOLL", upd.GetPollCreationMessageKey().GetID())
			vote, err := f.DecryptPollVote(e.ctx, message(contactJID, aliceJID, "x", out.msg))
			require.NoError(t, err)
			require.Equal(t, [][]byte{hashOf("Tacos")}, vote.GetSelectedOptions())

			// A Matrix poll becomes a WhatsApp poll; a contact's vote in
			// it comes back to Matrix.
			recv(&bridge.Event{SourceID: "$poll2", Content: &bridge.Content{Type: bridge.MsgPoll, Body: "Poll: Dinner?",
				Poll: &bridge.Poll{Question: "Dinner?", Options: []string{"Curry", "Ramen"}, MaxSelections: 1}}})
			out = nextWA()
			pc := out.msg.GetPollCreationMessage()
			require.NotNil(t, pc)
			require.Equal(t, "Dinner?", pc.GetName())
			require.Len(t, pc.GetOptions(), 2)
			require.Equal(t, "Ramen", pc.GetOptions()[1].GetOptionName())
			require.True(t, f.dispatch(message(contactJID, contactJID, "WAVOTE2", contactVote(f, out.id, "Ramen"))))
			s = next()
			require.Equal(t, []int{1}, s.Delivery.Event.Content.Poll.Selected)
			require.Equal(t, bridge.RemoteID("$poll2"), s.Delivery.ReplyTo)

			// Locations.
			require.True(t, f.dispatch(message(contactJID, contactJID, "WALOC", &waE2E.Message{LocationMessage: &waE2E.LocationMessage{
				DegreesLatitude: proto.Float64(37.7955), DegreesLongitude: proto.Float64(-122.3937), Name: proto.String("Ferry Building")}})))
			s = next()
			ct = s.Delivery.Event.Content
			require.Equal(t, bridge.MsgLocation, ct.Type)
			require.Equal(t, &bridge.Location{Lat: 37.7955, Long: -122.3937, Name: "Ferry Building"}, ct.Location)
			require.Equal(t, "geo:37.795500,-122.393700", ct.Location.GeoURI())
			require.True(t, f.dispatch(message(contactJID, contactJID, "WALIVE", &waE2E.Message{LiveLocationMessage: &waE2E.LiveLocationMessage{
				DegreesLatitude: proto.Float64(51.5), DegreesLongitude: proto.Float64(-0.12)}})))
			s = next()
			ct = s.Delivery.Event.Content
			require.Equal(t, bridge.MsgLocation, ct.Type)
			require.True(t, ct.Location.Live)
			require.Contains(t, ct.Body, "Live location (last known position")

			recv(&bridge.Event{SourceID: "$loc", Content: &bridge.Content{Type: bridge.MsgLocation, Body: "Location: geo:48.858400,2.294500",
				Location: &bridge.Location{Lat: 48.8584, Long: 2.2945}}})
			out = nextWA()
			loc := out.msg.GetLocationMessage()
			require.NotNil(t, loc)
			require.InDelta(t, 48.8584, loc.GetDegreesLatitude(), 1e-9)
			require.InDelta(t, 2.2945, loc.GetDegreesLongitude(), 1e-9)

			// A voice note with its waveform.
			wave := make([]byte, 64)
			for i := range wave {
				wave[i] = byte(i * 100 / 63)
			}
			f.media["/v/voice"] = oggOpus
			require.True(t, f.dispatch(message(contactJID, contactJID, "WAVOICE", &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
				PTT: proto.Bool(true), Seconds: proto.Uint32(4), Waveform: wave, Mimetype: proto.String("audio/ogg; codecs=opus"),
				DirectPath: proto.String("/v/voice"), MediaKey: []byte("k"), FileLength: proto.Uint64(uint64(len(oggOpus)))}})))
			s = next()
			ct = s.Delivery.Event.Content
			require.Equal(t, bridge.MsgVoice, ct.Type)
			require.Equal(t, 4*time.Second, ct.Media.Duration)
			require.Len(t, ct.Media.Waveform, 64)
			require.Equal(t, byte(0), ct.Media.Waveform[0])
			require.Equal(t, byte(255), ct.Media.Waveform[63])
			require.Equal(t, oggOpus, s.Media)

			e.mx.PutMedia("mxc://x/voice", oggOpus)
			mxWave := make([]byte, 128)
			for i := range mxWave {
				mxWave[i] = 255
			}
			recv(&bridge.Event{SourceID: "$voice", Content: &bridge.Content{Type: bridge.MsgVoice,
				Media: &bridge.Media{Ref: "mxc://x/voice", MimeType: "audio/ogg", Duration: 2 * time.Second, Waveform: mxWave}}})
			audio := nextWA().msg.GetAudioMessage()
			require.True(t, audio.GetPTT())
			require.Equal(t, "audio/ogg; codecs=opus", audio.GetMimetype())
			require.Len(t, audio.GetWaveform(), 64)
			require.Equal(t, byte(100), audio.GetWaveform()[10])

			e.mx.PutMedia("mxc://x/m4a", []byte("\x00\x00\x00\x20ftypM4A not ogg"))
			recv(&bridge.Event{SourceID: "$voice2", Content: &bridge.Content{Type: bridge.MsgVoice,
				Media: &bridge.Media{Ref: "mxc://x/m4a", MimeType: "audio/mp4"}}})
			audio = nextWA().msg.GetAudioMessage()
			require.NotNil(t, audio)
			require.False(t, audio.GetPTT(), "not Ogg Opus: a plain audio file, not a voice note")

			// Stickers.
			f.media["/v/sticker"] = webp
			require.True(t, f.dispatch(message(contactJID, contactJID, "WASTICKER", &waE2E.Message{StickerMessage: &waE2E.StickerMessage{
				Mimetype: proto.String("image/webp"), DirectPath: proto.String("/v/sticker"), MediaKey: []byte("k"),
				FileLength: proto.Uint64(uint64(len(webp))), Width: proto.Uint32(512), Height: proto.Uint32(512)}})))
			s = next()
			require.Equal(t, bridge.MsgSticker, s.Delivery.Event.Content.Type)
			require.Equal(t, webp, s.Media)

			e.mx.PutMedia("mxc://x/sticker", webp)
			recv(&bridge.Event{SourceID: "$sticker", Content: &bridge.Content{Type: bridge.MsgSticker,
				Media: &bridge.Media{Ref: "mxc://x/sticker", MimeType: "image/webp", Width: 256, Height: 256}}})
			st := nextWA().msg.GetStickerMessage()
			require.NotNil(t, st)
			require.Equal(t, "image/webp", st.GetMimetype())
			e.mx.PutMedia("mxc://x/png", []byte("\x89PNG\r\n\x1a\n not webp"))
			recv(&bridge.Event{SourceID: "$sticker2", Content: &bridge.Content{Type: bridge.MsgSticker,
				Media: &bridge.Media{Ref: "mxc://x/png", MimeType: "image/png"}}})
			require.NotNil(t, nextWA().msg.GetImageMessage(), "not WebP: an image")

			// View-once media is refused with a notice; its reference is
			// dropped, so it is never downloaded nor kept.
			for i, raw := range []*waE2E.Message{
				{ViewOnceMessageV2Extension: &waE2E.FutureProofMessage{Message: &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
					PTT: proto.Bool(true), DirectPath: proto.String("/secret/voice"), MediaKey: []byte("k")}}}},
				{ImageMessage: &waE2E.ImageMessage{ViewOnce: proto.Bool(true), DirectPath: proto.String("/secret/image"), MediaKey: []byte("k")}},
			} {
				require.True(t, f.dispatch(message(contactJID, contactJID, "WAONCE"+string(rune('A'+i)), raw)))
				s = next()
				ct = s.Delivery.Event.Content
				require.Equal(t, bridge.MsgNotice, ct.Type)
				require.Contains(t, ct.Body, "view-once")
				require.Nil(t, ct.Media)
				require.Nil(t, s.Media)
			}

			// Option texts are content: never stored, never logged.
			requireStoredNoNumbers(t, e)
			dump := string(dumpTables(e.ctx, t, e.db, tablesLike(e.ctx, t, e.db, "sb_%")))
			logs := e.logs.String()
			requireNoNumbers(t, logs, "logs")
			for _, content := range []string{"Lunch where", "Pizza", "Sushi", "Tacos", "Dinner?", "Curry", "Ramen", "Ferry Building", "/secret/"} {
				require.NotContains(t, dump, content, "the database")
				require.NotContains(t, logs, content, "the logs")
			}
			if e.dbOpts.Type == database.TypeSQLite {
				for _, suffix := range []string{"", "-wal"} {
					raw, err := os.ReadFile(e.dbOpts.URI + suffix)
					if os.IsNotExist(err) {
						continue
					}
					require.NoError(t, err)
					for _, content := range []string{"Lunch where", "Sushi", "Ramen", "Ferry Building"} {
						require.NotContains(t, string(raw), content, "SQLite file"+suffix)
					}
				}
			}
		})
	}
}

// Through the relay account a Matrix user's vote cannot be theirs on
// WhatsApp (it would count as the relay's), so it goes out as a text
// reply to the poll naming the option numbers; a poll WhatsApp cannot
// carry (more than 12 options) goes out as its text.
func TestRelayPollVotesAsText(t *testing.T) {
	e := newEnv(t)
	relay := e.login(RelayAccount, relayJID)
	require.True(t, relay.dispatch(message(contactJID, contactJID, "RP1", &waE2E.Message{PollCreationMessage: &waE2E.PollCreationMessage{
		Name:    proto.String("Lunch where?"),
		Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Pizza")}, {OptionName: proto.String("Sushi")}},
	}})))
	sent := e.mx.WaitSent(1, 5*time.Second)
	require.Len(t, sent, 1)
	_, mxLeg := e.conversationOf(e.chatOf(RelayAccount, contactJID))
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$rv", ReplyTo: sent[0].RemoteID,
		Sender:  bridge.Sender{ID: bob, DisplayName: "Bob"},
		Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{1}}}}))
	out := relay.waitSent(1)
	require.Len(t, out, 1)
	require.Nil(t, out[0].msg.GetPollUpdateMessage())
	et := out[0].msg.GetExtendedTextMessage()
	require.Equal(t, "Bob: Voted for option 2", et.GetText())
	require.Equal(t, "RP1", et.GetContextInfo().GetStanzaID())

	options := make([]string, 13)
	for i := range options {
		options[i] = "option " + string(rune('a'+i))
	}
	require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindMessage, Source: mxLeg, SourceID: "$big",
		Sender:  bridge.Sender{ID: bob, DisplayName: "Bob"},
		Content: &bridge.Content{Type: bridge.MsgPoll, Poll: &bridge.Poll{Question: "Which?", Options: options, MaxSelections: 1}}}))
	out = relay.waitSent(2)
	require.Len(t, out, 2)
	require.Nil(t, out[1].msg.GetPollCreationMessage())
	require.Contains(t, out[1].msg.GetConversation(), "Bob: Poll: Which?\n1. option a")
	require.Contains(t, out[1].msg.GetConversation(), "13. option m")
}

// A poll's option hashes are metadata: gone after retention.metadata
// (and a vote in the poll is then not bridged), like group senders.
func TestPollOptionsPruned(t *testing.T) {
	e := newEnv(t, withMetadata(time.Hour))
	f := e.login(alice, aliceJID)
	require.True(t, f.dispatch(message(contactJID, contactJID, "PP1", &waE2E.Message{PollCreationMessage: &waE2E.PollCreationMessage{
		Name:    proto.String("Lunch where?"),
		Options: []*waE2E.PollCreationMessage_Option{{OptionName: proto.String("Pizza")}, {OptionName: proto.String("Sushi")}},
	}})))
	e.mx.WaitSent(1, 5*time.Second)
	var rows int
	require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_poll`).Scan(&rows))
	require.Equal(t, 1, rows)
	e.advance(2 * time.Hour)
	e.wa.Prune(e.ctx)
	require.NoError(t, e.db.QueryRow(e.ctx, `SELECT COUNT(*) FROM sb_whatsapp_poll`).Scan(&rows))
	require.Equal(t, 0, rows)
	require.True(t, f.dispatch(message(contactJID, contactJID, "PV1", contactVote(f, "PP1", "Sushi"))))
	require.True(t, f.dispatch(message(contactJID, contactJID, "PT1", text("after"))))
	sent := e.mx.WaitSent(2, 5*time.Second)
	require.Len(t, sent, 2)
	require.Equal(t, "after", sent[1].Delivery.Event.Content.Body, "the vote was not bridged")
}
