package whatsapp

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
)

// oggCRC is the Ogg page checksum (CRC-32, polynomial 0x04c11db7, not
// reflected, no initial or final xor).
func oggCRC(page []byte) uint32 {
	var crc uint32
	for _, b := range page {
		crc ^= uint32(b) << 24
		for range 8 {
			if crc&0x80000000 != 0 {
				crc = crc<<1 ^ 0x04c11db7
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// oggPage is one Ogg page holding packets (each under 255 bytes).
func oggPage(flags byte, granule uint64, seq uint32, packets ...[]byte) []byte {
	var page bytes.Buffer
	page.WriteString("OggS")
	page.WriteByte(0)
	page.WriteByte(flags)
	_ = binary.Write(&page, binary.LittleEndian, granule)
	_ = binary.Write(&page, binary.LittleEndian, uint32(0x5b0a)) // stream serial
	_ = binary.Write(&page, binary.LittleEndian, seq)
	_ = binary.Write(&page, binary.LittleEndian, uint32(0)) // CRC, set below
	page.WriteByte(byte(len(packets)))
	for _, p := range packets {
		page.WriteByte(byte(len(p)))
	}
	for _, p := range packets {
		page.Write(p)
	}
	out := page.Bytes()
	binary.LittleEndian.PutUint32(out[22:], oggCRC(out))
	return out
}

// voiceNote is a whole Ogg Opus file (RFC 7845): the identification
// header, the comment header and one second of mono silence in 20 ms
// CELT frames, each page with its checksum.
func voiceNote() []byte {
	head := []byte("OpusHead\x01\x01")
	head = binary.LittleEndian.AppendUint16(head, 312)   // pre-skip
	head = binary.LittleEndian.AppendUint32(head, 48000) // input sample rate
	head = append(head, 0, 0, 0)                         // output gain, mapping family 0
	tags := []byte("OpusTags")
	tags = binary.LittleEndian.AppendUint32(tags, 11)
	tags = append(tags, "switchboard"...)
	tags = binary.LittleEndian.AppendUint32(tags, 0)
	frames := make([][]byte, 50)
	for i := range frames {
		frames[i] = []byte{0xf8, 0xff, 0xfe} // TOC: CELT fullband 20 ms, one frame; silence
	}
	out := oggPage(0x02, 0, 0, head)
	out = append(out, oggPage(0, 0, 1, tags)...)
	return append(out, oggPage(0x04, 312+48000, 2, frames...)...)
}

// stickerWebP is a real 1x1 lossless WebP image.
var stickerWebP = []byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00")

// richSide is a test's two ends of one chat: the bridge's Matrix leg and
// the contact's real client.
type richSide struct {
	e     *srvEnv
	own   types.JID
	carol *contact
	mxLeg bridge.Leg
	seen  int // deliveries to the Matrix leg so far
	got   int // messages the contact received so far
}

// next waits for the Matrix leg's next delivery.
func (r *richSide) next() bridgetest.Sent {
	r.e.t.Helper()
	r.seen++
	s := r.e.waitSent(r.seen)
	return s[r.seen-1]
}

// nextWA waits for the contact's next message.
func (r *richSide) nextWA() *events.Message {
	r.e.t.Helper()
	r.got++
	got := r.carol.waitMessages(r.e.t, r.got)
	return got[r.got-1]
}

// recv is a Matrix event from alice into the chat.
func (r *richSide) recv(evt *bridge.Event) {
	r.e.t.Helper()
	evt.Kind, evt.Source, evt.Sender = bridge.KindMessage, r.mxLeg, bridge.Sender{ID: alice, DisplayName: "Alice"}
	require.NoError(r.e.t, r.e.mx.Receive(r.e.ctx, evt))
}

// newRichSide logs alice in, pairs the contact and opens the chat with a
// text from the contact.
func newRichSide(e *srvEnv) *richSide {
	t := e.t
	t.Helper()
	r := &richSide{e: e, own: e.loginQR(alice, aliceNumber).ToNonAD(), carol: e.newContact(contactNumber, "Carol")}
	_, err := r.carol.cli.SendMessage(e.ctx, r.own, &waE2E.Message{Conversation: proto.String("hi")})
	require.NoError(t, err)
	r.mxLeg = e.matrixLeg(r.next().Delivery.Event.Source.Chat)
	return r
}

// requireNoContent checks that none of texts is in any table of the
// bridge's database (the connector's, the router's, whatsmeow's) nor in
// the SQLite files, and that no number is either.
func (e *srvEnv) requireNoContent(texts []string, tables ...string) {
	t := e.t
	t.Helper()
	e.requireNoNumbersAnywhere(tables...)
	dump := dumpTables(e.ctx, t, e.db, tablesLike(e.ctx, t, e.db, "%"))
	logs := e.logs.String()
	for _, text := range texts {
		require.False(t, bytes.Contains(dump, []byte(text)), "%q is stored in the database", text)
		require.NotContains(t, logs, text, "the logs")
	}
	if e.dbo.Type != database.TypeSQLite {
		return
	}
	for _, suffix := range []string{"", "-wal"} {
		raw, err := readIfExists(e.dbo.URI + suffix)
		require.NoError(t, err)
		for _, text := range texts {
			require.False(t, bytes.Contains(raw, []byte(text)), "SQLite file%s holds %q", suffix, text)
		}
	}
}

// Polls cross both ways with real vote encryption: the contact's
// whatsmeow creates a poll (with its message secret) and votes in it
// (encrypted with that secret); the bridge's whatsmeow, on the sealed
// store, decrypts the vote and the bridge matches it to the option
// number through its sealed option hashes. Alice's poll and votes from
// Matrix reach the contact, whose whatsmeow decrypts them to the hashes
// of the options chosen. No option text and no number is stored.
func TestServerPolls(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		r := newRichSide(e)
		carol := r.carol.cli

		// WhatsApp -> Matrix: a poll, then the contact's vote.
		resp, err := carol.SendMessage(e.ctx, r.own, carol.BuildPollCreation("Lunch where?", []string{"Pizza", "Sushi", "Tacos"}, 1))
		require.NoError(t, err)
		s := r.next()
		ct := s.Delivery.Event.Content
		require.Equal(t, bridge.MsgPoll, ct.Type)
		require.Equal(t, &bridge.Poll{Question: "Lunch where?", Options: []string{"Pizza", "Sushi", "Tacos"}, MaxSelections: 1}, ct.Poll)
		pollOnMatrix := s.RemoteID
		pollInfo := &types.MessageInfo{MessageSource: types.MessageSource{Chat: r.own, Sender: carol.Store.ID.ToNonAD(), IsFromMe: true}, ID: resp.ID}
		vote, err := carol.BuildPollVote(e.ctx, pollInfo, []string{"Sushi"})
		require.NoError(t, err)
		_, err = carol.SendMessage(e.ctx, r.own, vote)
		require.NoError(t, err)
		s = r.next()
		require.Equal(t, bridge.MsgPollVote, s.Delivery.Event.Content.Type)
		require.Equal(t, []int{1}, s.Delivery.Event.Content.Poll.Selected, "the vote decrypted to the second option")
		require.Equal(t, pollOnMatrix, s.Delivery.ReplyTo, "the vote names the poll as Matrix knows it")

		// The contact changes their vote to two options.
		vote, err = carol.BuildPollVote(e.ctx, pollInfo, []string{"Pizza", "Tacos"})
		require.NoError(t, err)
		_, err = carol.SendMessage(e.ctx, r.own, vote)
		require.NoError(t, err)
		require.Equal(t, []int{0, 2}, r.next().Delivery.Event.Content.Poll.Selected)

		// Alice votes in the contact's poll from Matrix: the contact's
		// whatsmeow decrypts it with its own poll's secret.
		r.recv(&bridge.Event{SourceID: "$vote1", ReplyTo: pollOnMatrix, Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{2}}}})
		got := r.nextWA()
		require.NotNil(t, got.Message.GetPollUpdateMessage(), "a vote, not a text")
		require.Equal(t, resp.ID, got.Message.GetPollUpdateMessage().GetPollCreationMessageKey().GetID())
		dec, err := carol.DecryptPollVote(e.ctx, got)
		require.NoError(t, err)
		require.Equal(t, whatsmeow.HashPollOptions([]string{"Tacos"}), dec.GetSelectedOptions())

		// Matrix -> WhatsApp: alice's poll, her vote in it, and the
		// contact's vote coming back.
		r.recv(&bridge.Event{SourceID: "$poll2", Content: &bridge.Content{Type: bridge.MsgPoll, Body: "Poll: Dinner?",
			Poll: &bridge.Poll{Question: "Dinner?", Options: []string{"Curry", "Ramen", "Falafel"}, MaxSelections: 1}}})
		got = r.nextWA()
		pc := pollCreation(got.Message)
		require.NotNil(t, pc, "a poll, not a text")
		require.Equal(t, "Dinner?", pc.GetName())
		require.Equal(t, uint32(1), pc.GetSelectableOptionsCount())
		require.Len(t, pc.GetOptions(), 3)
		require.Equal(t, "Ramen", pc.GetOptions()[1].GetOptionName())
		require.NotEmpty(t, got.Message.GetMessageContextInfo().GetMessageSecret(), "the poll carries its secret")
		alicePoll := got.Info

		r.recv(&bridge.Event{SourceID: "$vote2", ReplyTo: "$poll2", Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{0}}}})
		got = r.nextWA()
		require.Equal(t, alicePoll.ID, got.Message.GetPollUpdateMessage().GetPollCreationMessageKey().GetID())
		dec, err = carol.DecryptPollVote(e.ctx, got)
		require.NoError(t, err)
		require.Equal(t, whatsmeow.HashPollOptions([]string{"Curry"}), dec.GetSelectedOptions())

		vote, err = carol.BuildPollVote(e.ctx, &alicePoll, []string{"Falafel"})
		require.NoError(t, err)
		_, err = carol.SendMessage(e.ctx, r.own, vote)
		require.NoError(t, err)
		s = r.next()
		require.Equal(t, bridge.MsgPollVote, s.Delivery.Event.Content.Type)
		require.Equal(t, []int{2}, s.Delivery.Event.Content.Poll.Selected)
		require.Equal(t, bridge.RemoteID("$poll2"), s.Delivery.ReplyTo)

		e.requireNoContent([]string{"Lunch where", "Pizza", "Sushi", "Tacos", "Dinner?", "Curry", "Ramen", "Falafel"},
			"sb_whatsapp_poll", "whatsmeow_message_secrets")
	})
}

// A location, a voice note (Ogg Opus with its waveform) and a sticker
// (WebP) cross both ways; the media through the server's media host,
// encrypted by each side's whatsmeow.
func TestServerLocationVoiceSticker(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		r := newRichSide(e)
		carol := r.carol.cli
		voice := voiceNote()
		require.True(t, isOggOpus(voice))

		// WhatsApp -> Matrix.
		_, err := carol.SendMessage(e.ctx, r.own, &waE2E.Message{LocationMessage: &waE2E.LocationMessage{
			DegreesLatitude: proto.Float64(37.7955), DegreesLongitude: proto.Float64(-122.3937), Name: proto.String("Ferry Building")}})
		require.NoError(t, err)
		s := r.next()
		require.Equal(t, bridge.MsgLocation, s.Delivery.Event.Content.Type)
		require.Equal(t, &bridge.Location{Lat: 37.7955, Long: -122.3937, Name: "Ferry Building"}, s.Delivery.Event.Content.Location)

		wave := make([]byte, 64)
		for i := range wave {
			wave[i] = byte(i * 100 / 63)
		}
		up, err := carol.Upload(e.ctx, voice, whatsmeow.MediaAudio)
		require.NoError(t, err)
		_, err = carol.SendMessage(e.ctx, r.own, &waE2E.Message{AudioMessage: &waE2E.AudioMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey, Mimetype: proto.String("audio/ogg; codecs=opus"),
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			PTT: proto.Bool(true), Seconds: proto.Uint32(1), Waveform: wave}})
		require.NoError(t, err)
		s = r.next()
		ct := s.Delivery.Event.Content
		require.Equal(t, bridge.MsgVoice, ct.Type)
		require.Equal(t, time.Second, ct.Media.Duration)
		require.Len(t, ct.Media.Waveform, 64)
		require.Equal(t, byte(0), ct.Media.Waveform[0])
		require.Equal(t, byte(255), ct.Media.Waveform[63], "WhatsApp's 0-100 scaled to 0-255")
		require.Equal(t, voice, s.Media, "the voice note, decrypted")

		up, err = carol.Upload(e.ctx, stickerWebP, whatsmeow.MediaImage)
		require.NoError(t, err)
		_, err = carol.SendMessage(e.ctx, r.own, &waE2E.Message{StickerMessage: &waE2E.StickerMessage{
			URL: proto.String(up.URL), DirectPath: proto.String(up.DirectPath), MediaKey: up.MediaKey, Mimetype: proto.String("image/webp"),
			FileEncSHA256: up.FileEncSHA256, FileSHA256: up.FileSHA256, FileLength: proto.Uint64(up.FileLength),
			Width: proto.Uint32(1), Height: proto.Uint32(1)}})
		require.NoError(t, err)
		s = r.next()
		require.Equal(t, bridge.MsgSticker, s.Delivery.Event.Content.Type)
		require.Equal(t, stickerWebP, s.Media, "the sticker, decrypted")

		// Matrix -> WhatsApp.
		r.recv(&bridge.Event{SourceID: "$loc", Content: &bridge.Content{Type: bridge.MsgLocation, Body: "Location: geo:48.858400,2.294500",
			Location: &bridge.Location{Lat: 48.8584, Long: 2.2945, Name: "Eiffel Tower"}}})
		loc := r.nextWA().Message.GetLocationMessage()
		require.NotNil(t, loc, "a location, not a text")
		require.InDelta(t, 48.8584, loc.GetDegreesLatitude(), 1e-9)
		require.InDelta(t, 2.2945, loc.GetDegreesLongitude(), 1e-9)
		require.Equal(t, "Eiffel Tower", loc.GetName())

		e.mx.PutMedia("mxc://example.org/voice", voice)
		mxWave := make([]byte, 128)
		for i := range mxWave {
			mxWave[i] = byte(i * 2)
		}
		r.recv(&bridge.Event{SourceID: "$voice", Content: &bridge.Content{Type: bridge.MsgVoice, Body: "Voice message",
			Media: &bridge.Media{Ref: "mxc://example.org/voice", MimeType: "audio/ogg", FileName: "voice.ogg", Duration: time.Second, Waveform: mxWave}}})
		audio := r.nextWA().Message.GetAudioMessage()
		require.NotNil(t, audio)
		require.True(t, audio.GetPTT(), "a voice note")
		require.Equal(t, "audio/ogg; codecs=opus", audio.GetMimetype())
		require.Equal(t, uint32(1), audio.GetSeconds())
		require.Len(t, audio.GetWaveform(), 64)
		require.Less(t, audio.GetWaveform()[0], audio.GetWaveform()[63], "the waveform's shape kept")
		data, err := carol.Download(e.ctx, audio)
		require.NoError(t, err)
		require.Equal(t, voice, data)

		e.mx.PutMedia("mxc://example.org/sticker", stickerWebP)
		r.recv(&bridge.Event{SourceID: "$sticker", Content: &bridge.Content{Type: bridge.MsgSticker, Body: "a cat",
			Media: &bridge.Media{Ref: "mxc://example.org/sticker", MimeType: "image/webp", Width: 1, Height: 1}}})
		st := r.nextWA().Message.GetStickerMessage()
		require.NotNil(t, st, "a sticker, not an image")
		require.Equal(t, "image/webp", st.GetMimetype())
		data, err = carol.Download(e.ctx, st)
		require.NoError(t, err)
		require.Equal(t, stickerWebP, data)

		require.Len(t, e.srv.Media(), 4, "every file went through the media host")
		for _, blob := range e.srv.Media() {
			require.False(t, bytes.Contains(blob, []byte("OpusHead")), "the server holds ciphertext only")
			require.False(t, bytes.Contains(blob, []byte("WEBPVP8L")), "the server holds ciphertext only")
		}
		e.requireNoContent([]string{"Ferry Building", "Eiffel Tower"}, "sb_whatsapp_chat")
	})
}

// groupInfos collects the group changes a contact's client is told of.
type groupInfos struct {
	mu   sync.Mutex
	evts []*events.GroupInfo
}

func watchGroupInfo(c *contact) *groupInfos {
	g := &groupInfos{}
	c.cli.AddEventHandler(func(evt any) {
		if gi, ok := evt.(*events.GroupInfo); ok {
			g.mu.Lock()
			g.evts = append(g.evts, gi)
			g.mu.Unlock()
		}
	})
	return g
}

// wait returns the first change that matches.
func (g *groupInfos) wait(t *testing.T, what string, match func(*events.GroupInfo) bool) *events.GroupInfo {
	t.Helper()
	var found *events.GroupInfo
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, evt := range g.evts {
			if match(evt) {
				found = evt
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "the contact is told: %s", what)
	return found
}

// waitChatInfo waits for a chat info delivery to the Matrix leg that
// matches.
func (e *srvEnv) waitChatInfo(what string, match func(*bridge.ChatInfo) bool) *bridge.Delivery {
	e.t.Helper()
	var found *bridge.Delivery
	require.Eventually(e.t, func() bool {
		for _, d := range e.mx.WaitChatInfos(0, 0) {
			if d.Event.ChatInfo != nil && match(d.Event.ChatInfo) {
				found = d
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "the Matrix leg is told: %s", what)
	return found
}

// A group's name and description changed by a member on WhatsApp (the
// server's w:gp2 notifications) reach the portal as chat info from that
// member's pseudonym; alice renames the group and changes its
// description from Matrix, and the contact's client is told and reads
// them in the group's info; a name WhatsApp refuses (too long) is
// reported as failed, and the group keeps its name.
func TestServerGroupInfoBothWays(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		seen := watchGroupInfo(carol)
		info, err := carol.cli.CreateGroup(e.ctx, whatsmeow.ReqCreateGroup{Name: "Family", Participants: []types.JID{own}})
		require.NoError(t, err)
		gid := info.JID
		_, err = carol.cli.SendMessage(e.ctx, gid, &waE2E.Message{Conversation: proto.String("hi group")})
		require.NoError(t, err)
		first := e.waitSent(1)[0]
		carolID := first.Delivery.Event.Sender.ID
		mxLeg := e.matrixLeg(first.Delivery.Event.Source.Chat)

		// WhatsApp -> Matrix.
		require.NoError(t, carol.cli.SetGroupName(e.ctx, gid, "Family trip"))
		d := e.waitChatInfo("the new name", func(ci *bridge.ChatInfo) bool { return ci.Name != nil })
		require.Equal(t, "Family trip", *d.Event.ChatInfo.Name)
		require.Equal(t, carolID, d.Event.Sender.ID, "changed by Carol's pseudonym")
		// Right after the rename, in the same second as WhatsApp counts
		// time: the description is a change of its own, not a duplicate.
		require.NoError(t, carol.cli.SetGroupTopic(e.ctx, gid, "", "", "Plans for August"))
		d = e.waitChatInfo("the new description", func(ci *bridge.ChatInfo) bool { return ci.Topic != nil })
		require.Equal(t, "Plans for August", *d.Event.ChatInfo.Topic)
		require.Equal(t, carolID, d.Event.Sender.ID)

		// Matrix -> WhatsApp: alice (a logged-in member, not the relay)
		// renames the group and changes its description.
		change := func(id string, ci *bridge.ChatInfo) {
			t.Helper()
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindChatInfo, Source: mxLeg, SourceID: bridge.RemoteID(id),
				Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, ChatInfo: ci}))
		}
		name, topic := "Family 2026", "Flights booked"
		change("$rename", &bridge.ChatInfo{Name: &name})
		evt := seen.wait(t, "the bridge's rename", func(gi *events.GroupInfo) bool { return gi.Name != nil && gi.Name.Name == name })
		require.Equal(t, digitsOf(aliceNumber), evt.Sender.User, "renamed by alice's account")
		change("$topic", &bridge.ChatInfo{Topic: &topic})
		seen.wait(t, "the bridge's description", func(gi *events.GroupInfo) bool { return gi.Topic != nil && gi.Topic.Topic == topic })
		gi, err := carol.cli.GetGroupInfo(e.ctx, gid)
		require.NoError(t, err)
		require.Equal(t, name, gi.Name)
		require.Equal(t, topic, gi.Topic)

		// WhatsApp refuses a name over 25 characters: reported, not kept.
		long := "A name far too long for WhatsApp groups"
		change("$long", &bridge.ChatInfo{Name: &long})
		rep, ok := e.mx.WaitStatus(20*time.Second, func(r bridge.StatusReport) bool { return r.SourceID == "$long" && r.State != bridge.StateRetrying })
		require.True(t, ok, "a status for the refused rename")
		require.Equal(t, bridge.StateFailed, rep.State)
		require.ErrorIs(t, rep.Err, ErrGroupChangeRefused)
		gi, err = carol.cli.GetGroupInfo(e.ctx, gid)
		require.NoError(t, err)
		require.Equal(t, name, gi.Name)

		e.requireNoContent(nil, "sb_whatsapp_chat")
	})
}

// Polls in a group, where votes name the poll's sender as the key's
// participant and cross as sender-key messages: the contact's poll and
// both contacts' votes (the poll's author's and another member's) reach
// the portal as the right options; alice's vote in the contact's poll
// and her own poll from Matrix reach the contacts, who decrypt her vote.
func TestServerGroupPolls(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		dave := e.newContact(otherNumber, "Dave")
		info, err := carol.cli.CreateGroup(e.ctx, whatsmeow.ReqCreateGroup{Name: "Lunch", Participants: []types.JID{own, dave.cli.Store.ID.ToNonAD()}})
		require.NoError(t, err)
		gid := info.JID
		seen := 0
		next := func() bridgetest.Sent {
			t.Helper()
			seen++
			return e.waitSent(seen)[seen-1]
		}

		resp, err := carol.cli.SendMessage(e.ctx, gid, carol.cli.BuildPollCreation("Lunch where?", []string{"Pizza", "Sushi", "Tacos"}, 0))
		require.NoError(t, err)
		s := next()
		require.Equal(t, bridge.MsgPoll, s.Delivery.Event.Content.Type)
		require.Equal(t, 3, s.Delivery.Event.Content.Poll.MaxSelections, "WhatsApp's 0: any number")
		pollOnMatrix := s.RemoteID
		mxLeg := e.matrixLeg(s.Delivery.Event.Source.Chat)

		// The poll's author votes, then another member (whose vote names
		// Carol as the poll's participant).
		vote, err := carol.cli.BuildPollVote(e.ctx, &types.MessageInfo{MessageSource: types.MessageSource{Chat: gid, Sender: carol.cli.Store.ID.ToNonAD(), IsFromMe: true, IsGroup: true}, ID: resp.ID}, []string{"Tacos"})
		require.NoError(t, err)
		_, err = carol.cli.SendMessage(e.ctx, gid, vote)
		require.NoError(t, err)
		s = next()
		require.Equal(t, bridge.MsgPollVote, s.Delivery.Event.Content.Type)
		require.Equal(t, []int{2}, s.Delivery.Event.Content.Poll.Selected)
		require.Equal(t, pollOnMatrix, s.Delivery.ReplyTo)

		davePoll := dave.waitMessages(t, 1)[0]
		require.NotNil(t, pollCreation(davePoll.Message))
		vote, err = dave.cli.BuildPollVote(e.ctx, &davePoll.Info, []string{"Pizza", "Sushi"})
		require.NoError(t, err)
		_, err = dave.cli.SendMessage(e.ctx, gid, vote)
		require.NoError(t, err)
		s = next()
		require.Equal(t, []int{0, 1}, s.Delivery.Event.Content.Poll.Selected, "another member's vote decrypted")
		require.Equal(t, pollOnMatrix, s.Delivery.ReplyTo)

		recv := func(evt *bridge.Event) {
			t.Helper()
			evt.Kind, evt.Source, evt.Sender = bridge.KindMessage, mxLeg, bridge.Sender{ID: alice, DisplayName: "Alice"}
			require.NoError(t, e.mx.Receive(e.ctx, evt))
		}
		fromAlice := func(c *contact, what string, match func(*waE2E.Message) bool) *events.Message {
			t.Helper()
			var found *events.Message
			require.Eventually(t, func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				for _, m := range c.got {
					if m.Info.Sender.User == own.User && match(m.Message) {
						found = m
						return true
					}
				}
				return false
			}, 20*time.Second, 10*time.Millisecond, "the contact received alice's %s", what)
			return found
		}

		// Alice votes in Carol's poll from Matrix: both contacts decrypt it.
		recv(&bridge.Event{SourceID: "$gvote", ReplyTo: pollOnMatrix, Content: &bridge.Content{Type: bridge.MsgPollVote, Poll: &bridge.Poll{Selected: []int{1}}}})
		for _, c := range []*contact{carol, dave} {
			got := fromAlice(c, "vote", func(m *waE2E.Message) bool { return m.GetPollUpdateMessage() != nil })
			require.Equal(t, gid, got.Info.Chat)
			dec, err := c.cli.DecryptPollVote(e.ctx, got)
			require.NoError(t, err)
			require.Equal(t, whatsmeow.HashPollOptions([]string{"Sushi"}), dec.GetSelectedOptions())
		}

		// Alice's poll in the group; Dave votes in it.
		recv(&bridge.Event{SourceID: "$gpoll", Content: &bridge.Content{Type: bridge.MsgPoll, Body: "Poll: Dinner?",
			Poll: &bridge.Poll{Question: "Dinner?", Options: []string{"Curry", "Ramen"}, MaxSelections: 1}}})
		alicePoll := fromAlice(dave, "poll", func(m *waE2E.Message) bool { return pollCreation(m) != nil })
		require.Equal(t, "Dinner?", pollCreation(alicePoll.Message).GetName())
		vote, err = dave.cli.BuildPollVote(e.ctx, &alicePoll.Info, []string{"Ramen"})
		require.NoError(t, err)
		_, err = dave.cli.SendMessage(e.ctx, gid, vote)
		require.NoError(t, err)
		s = next()
		require.Equal(t, []int{1}, s.Delivery.Event.Content.Poll.Selected)
		require.Equal(t, bridge.RemoteID("$gpoll"), s.Delivery.ReplyTo)

		e.requireNoContent([]string{"Lunch where", "Pizza", "Sushi", "Tacos", "Dinner?", "Curry", "Ramen"},
			"sb_whatsapp_poll", "whatsmeow_message_secrets", "whatsmeow_sender_keys")
	})
}

// A kick from Matrix: while alice is not an admin of the group, WhatsApp
// refuses it and the refusal is reported; once the group's creator has
// made her an admin, her kick removes the member on WhatsApp (their
// client is told, the group's info no longer lists them).
func TestServerGroupKick(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dbo database.Options) {
		e := newSrvEnv(t, dbo)
		own := e.loginQR(alice, aliceNumber).ToNonAD()
		carol := e.newContact(contactNumber, "Carol")
		dave := e.newContact(otherNumber, "Dave")
		daveSeen := watchGroupInfo(dave)
		daveJID := dave.cli.Store.ID.ToNonAD()
		info, err := carol.cli.CreateGroup(e.ctx, whatsmeow.ReqCreateGroup{Name: "Book club", Participants: []types.JID{own, daveJID}})
		require.NoError(t, err)
		gid := info.JID
		_, err = dave.cli.SendMessage(e.ctx, gid, &waE2E.Message{Conversation: proto.String("dave here")})
		require.NoError(t, err)
		first := e.waitSent(1)[0]
		daveGhost := first.Delivery.Event.Sender
		mxLeg := e.matrixLeg(first.Delivery.Event.Source.Chat)
		kick := func(id string) bridge.StatusReport {
			t.Helper()
			require.NoError(t, e.mx.Receive(e.ctx, &bridge.Event{Kind: bridge.KindChatInfo, Source: mxLeg, SourceID: bridge.RemoteID(id),
				Sender: bridge.Sender{ID: alice, DisplayName: "Alice"}, ChatInfo: &bridge.ChatInfo{Membership: bridge.MemberLeft, Member: &daveGhost}}))
			rep, ok := e.mx.WaitStatus(20*time.Second, func(r bridge.StatusReport) bool {
				return r.SourceID == bridge.RemoteID(id) && r.State != bridge.StateRetrying
			})
			require.True(t, ok, "a status for the kick")
			return rep
		}
		members := func() []types.JID {
			t.Helper()
			gi, err := carol.cli.GetGroupInfo(e.ctx, gid)
			require.NoError(t, err)
			var out []types.JID
			for _, p := range gi.Participants {
				out = append(out, p.JID.ToNonAD())
			}
			return out
		}

		rep := kick("$kick1")
		require.Equal(t, bridge.StateFailed, rep.State)
		require.ErrorIs(t, rep.Err, ErrGroupChangeRefused, "not an admin: WhatsApp refuses")
		requireNoNumbers(t, rep.Err.Error(), "the reason")
		require.Contains(t, members(), daveJID)

		_, err = carol.cli.UpdateGroupParticipants(e.ctx, gid, []types.JID{own}, whatsmeow.ParticipantChangePromote)
		require.NoError(t, err)
		rep = kick("$kick2")
		require.Equal(t, bridge.StateDelivered, rep.State, "%v", rep.Err)
		evt := daveSeen.wait(t, "removed", func(gi *events.GroupInfo) bool { return slices.Contains(gi.Leave, daveJID) })
		require.Equal(t, own.User, evt.Sender.User, "removed by alice's account")
		require.NotContains(t, members(), daveJID)
		require.Len(t, members(), 2)
		e.requireNoContent(nil, "sb_whatsapp_chat")
	})
}
