package whatsapp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"
	"maunium.net/go/mautrix/id"
)

// fakeClient is an in-memory WhatsApp: it records what the connector
// sends and lets tests dispatch real whatsmeow events to its handlers.
type fakeClient struct {
	mu       sync.Mutex
	cond     *sync.Cond
	handlers []whatsmeow.EventHandlerWithSuccessStatus
	own      types.JID
	// settle, when set, runs after waitSent saw its messages: the env
	// waits there until the router noted what was sent (the fake records
	// a send before the router commits its remote ID).
	settle func()

	connected   bool
	connectErrs []error // returned by the next Connect calls
	connects    int
	disconnects int
	logouts     int
	logoutErr   error

	qr          chan whatsmeow.QRChannelItem
	initialCode string // pushed on the QR channel when it is created
	pairCode    string
	pairedWith  []string

	sent       []sentMessage
	sendErr    error
	uploads    [][]byte
	media      map[string][]byte // direct path -> bytes
	reads      []readCall
	presences  []types.ChatPresence
	onWhatsApp map[string]types.JID // E.164 -> JID
	isOnCalls  int
	timers     []timerCall
	timerErr   error

	created   []whatsmeow.ReqCreateGroup
	createErr error
	refuseAdd map[string]int // user part -> the error code WhatsApp gives for adding them
	left      []types.JID
	groups    *fakeGroups // group metadata and edits (groupinfo_fake_test.go)
}

type sentMessage struct {
	to  types.JID
	msg *waE2E.Message
	id  types.MessageID
}

type readCall struct {
	ids          []types.MessageID
	chat, sender types.JID
}

type timerCall struct {
	chat  types.JID
	timer time.Duration
}

func newFakeClient(own types.JID) *fakeClient {
	f := &fakeClient{own: own, media: map[string][]byte{}, onWhatsApp: map[string]types.JID{}}
	f.cond = sync.NewCond(&f.mu)
	return f
}

var _ Client = (*fakeClient)(nil)

// dispatch delivers an event like whatsmeow's event loop; it returns
// false when a handler reported failure (whatsmeow then does not ack).
func (f *fakeClient) dispatch(evt any) bool {
	f.mu.Lock()
	hs := slices.Clone(f.handlers)
	f.mu.Unlock()
	for _, h := range hs {
		if !h(evt) {
			return false
		}
	}
	return true
}

func (f *fakeClient) Connect() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	f.cond.Broadcast()
	if len(f.connectErrs) > 0 {
		err := f.connectErrs[0]
		f.connectErrs = f.connectErrs[1:]
		return err
	}
	f.connected = true
	return nil
}

func (f *fakeClient) Disconnect() {
	f.mu.Lock()
	f.connected = false
	f.disconnects++
	f.cond.Broadcast()
	f.mu.Unlock()
}

func (f *fakeClient) IsConnected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *fakeClient) IsLoggedIn() bool { return f.IsConnected() }

func (f *fakeClient) Logout(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logouts++
	if f.logoutErr != nil {
		return f.logoutErr
	}
	f.connected = false
	return nil
}

func (f *fakeClient) AddEventHandlerWithSuccessStatus(h whatsmeow.EventHandlerWithSuccessStatus) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers = append(f.handlers, h)
	return uint32(len(f.handlers))
}

func (f *fakeClient) GetQRChannel(context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.qr = make(chan whatsmeow.QRChannelItem, 8)
	if f.initialCode != "" {
		f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: f.initialCode, Timeout: 20 * time.Second}
	}
	f.cond.Broadcast()
	return f.qr, nil
}

func (f *fakeClient) PairPhone(_ context.Context, phone string, _ bool, _ whatsmeow.PairClientType, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pairedWith = append(f.pairedWith, phone)
	if f.pairCode == "" {
		return "", errors.New("fake: no pairing code")
	}
	return f.pairCode, nil
}

func (f *fakeClient) SendMessage(_ context.Context, to types.JID, msg *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return whatsmeow.SendResponse{}, f.sendErr
	}
	var msgID types.MessageID
	if len(extra) > 0 {
		msgID = extra[0].ID
	}
	f.sent = append(f.sent, sentMessage{to: to, msg: msg, id: msgID})
	f.cond.Broadcast()
	return whatsmeow.SendResponse{ID: msgID, Timestamp: time.Now()}, nil
}

func (f *fakeClient) key(chat, sender types.JID, msgID types.MessageID) *waCommon.MessageKey {
	k := &waCommon.MessageKey{RemoteJID: proto.String(chat.String()), ID: proto.String(msgID), FromMe: proto.Bool(sender.User == f.own.User)}
	if !sender.IsEmpty() && sender.User != f.own.User && chat.Server == types.GroupServer {
		k.Participant = proto.String(sender.String())
	}
	return k
}

func (f *fakeClient) BuildEdit(chat types.JID, msgID types.MessageID, content *waE2E.Message) *waE2E.Message {
	return &waE2E.Message{EditedMessage: &waE2E.FutureProofMessage{Message: &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Key:  &waCommon.MessageKey{FromMe: proto.Bool(true), ID: proto.String(msgID), RemoteJID: proto.String(chat.String())},
		Type: waE2E.ProtocolMessage_MESSAGE_EDIT.Enum(), EditedMessage: content,
	}}}}
}

func (f *fakeClient) BuildReaction(chat, sender types.JID, msgID types.MessageID, reaction string) *waE2E.Message {
	return &waE2E.Message{ReactionMessage: &waE2E.ReactionMessage{Key: f.key(chat, sender, msgID), Text: proto.String(reaction)}}
}

func (f *fakeClient) BuildRevoke(chat, sender types.JID, msgID types.MessageID) *waE2E.Message {
	return &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{Type: waE2E.ProtocolMessage_REVOKE.Enum(), Key: f.key(chat, sender, msgID)}}
}

func (f *fakeClient) Upload(_ context.Context, data []byte, _ whatsmeow.MediaType) (whatsmeow.UploadResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads = append(f.uploads, slices.Clone(data))
	return whatsmeow.UploadResponse{URL: "https://mmg.example/u", DirectPath: "/up/1", MediaKey: []byte("key"), FileLength: uint64(len(data))}, nil
}

func (f *fakeClient) Download(_ context.Context, msg whatsmeow.DownloadableMessage) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.media[msg.GetDirectPath()]
	if !ok {
		return nil, whatsmeow.ErrMediaDownloadFailedWith404
	}
	// As whatsmeow does (ReturnDownloadWarnings): the data comes back with
	// a warning when its length is not the one the message declared (an
	// absent FileLength declares 0), or else when its SHA-256 differs.
	if sized, ok := msg.(interface{ GetFileLength() uint64 }); ok && uint64(len(data)) != sized.GetFileLength() {
		return data, fmt.Errorf("%w: expected %d, got %d", whatsmeow.ErrFileLengthMismatch, sized.GetFileLength(), len(data))
	}
	if sum := msg.GetFileSHA256(); len(sum) == sha256.Size && sha256.Sum256(data) != [sha256.Size]byte(sum) {
		return data, whatsmeow.ErrInvalidMediaSHA256
	}
	return data, nil
}

func (f *fakeClient) MarkRead(_ context.Context, ids []types.MessageID, _ time.Time, chat, sender types.JID, _ ...types.ReceiptType) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, readCall{ids: ids, chat: chat, sender: sender})
	f.cond.Broadcast()
	return nil
}

func (f *fakeClient) SendChatPresence(_ context.Context, _ types.JID, state types.ChatPresence, _ types.ChatPresenceMedia) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.presences = append(f.presences, state)
	f.cond.Broadcast()
	return nil
}

func (f *fakeClient) IsOnWhatsApp(_ context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isOnCalls++
	var out []types.IsOnWhatsAppResponse
	for _, p := range phones {
		jid, ok := f.onWhatsApp[p]
		out = append(out, types.IsOnWhatsAppResponse{Query: p, JID: jid, IsIn: ok})
	}
	return out, nil
}

func (f *fakeClient) SetDisappearingTimer(_ context.Context, chat types.JID, timer time.Duration, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.timerErr != nil {
		return f.timerErr
	}
	f.timers = append(f.timers, timerCall{chat: chat, timer: timer})
	return nil
}

func (f *fakeClient) GetGroupInfo(_ context.Context, jid types.JID) (*types.GroupInfo, error) {
	if jid.Server != types.GroupServer {
		return nil, whatsmeow.ErrNotInGroup
	}
	if info := f.groups.info(jid); info != nil {
		return info, nil
	}
	return &types.GroupInfo{JID: jid, GroupName: types.GroupName{Name: "Lunch crew"}}, nil
}

// CreateGroup makes a group 1203630000000001NN (NN counting up) with the
// account as super admin and the participants, each with the error code
// refuseAdd gives them (403 with an invitation, as for privacy settings).
func (f *fakeClient) CreateGroup(_ context.Context, req whatsmeow.ReqCreateGroup) (*types.GroupInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return nil, f.createErr
	}
	f.created = append(f.created, req)
	own := f.own.ToNonAD()
	info := &types.GroupInfo{
		JID:       types.NewJID(fmt.Sprintf("1203630000000001%02d", len(f.created)), types.GroupServer),
		OwnerJID:  own,
		GroupName: types.GroupName{Name: req.Name},
		Participants: []types.GroupParticipant{
			{JID: own, PhoneNumber: own, IsAdmin: true, IsSuperAdmin: true},
		},
	}
	for _, p := range req.Participants {
		gp := types.GroupParticipant{JID: p, PhoneNumber: p}
		if code := f.refuseAdd[p.User]; code != 0 {
			gp.Error = code
			gp.AddRequest = &types.GroupParticipantAddRequest{Code: "invite", Expiration: time.Now().Add(72 * time.Hour)}
		}
		info.Participants = append(info.Participants, gp)
	}
	info.ParticipantCount = len(info.Participants)
	return info, nil
}

func (f *fakeClient) LeaveGroup(_ context.Context, jid types.JID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left = append(f.left, jid)
	return nil
}

// waitFor blocks until cond (called with f.mu held) is true.
func (f *fakeClient) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
	defer t.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		f.cond.Wait()
	}
	return true
}

func (f *fakeClient) sentMessages() []sentMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func (f *fakeClient) waitSent(n int) []sentMessage {
	if f.waitFor(5*time.Second, func() bool { return len(f.sent) >= n }) && f.settle != nil {
		f.settle()
	}
	return f.sentMessages()
}

// fakeSessions hands out fake clients: New takes them from next (or
// makes one), Load returns the stored client for a JID.
type fakeSessions struct {
	mu      sync.Mutex
	next    []*fakeClient
	made    []*fakeClient
	stored  map[types.JID]*fakeClient
	deleted []types.JID
}

var _ Sessions = (*fakeSessions)(nil)

func (s *fakeSessions) Upgrade(context.Context) error { return nil }

func (s *fakeSessions) New(context.Context) (Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var f *fakeClient
	if len(s.next) > 0 {
		f, s.next = s.next[0], s.next[1:]
	} else {
		f = newFakeClient(types.EmptyJID)
	}
	s.made = append(s.made, f)
	return f, nil
}

func (s *fakeSessions) Load(_ context.Context, jid types.JID) (Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.stored[jid]
	if !ok {
		return nil, ErrNoSession
	}
	return f, nil
}

func (s *fakeSessions) Delete(_ context.Context, jid types.JID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = append(s.deleted, jid)
	delete(s.stored, jid)
	return nil
}

func (s *fakeSessions) store(jid types.JID, f *fakeClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		s.stored = map[types.JID]*fakeClient{}
	}
	s.stored[jid] = f
}

func (s *fakeSessions) deletedJIDs() []types.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// fakeMatrix records what the connector asks the Matrix side to show.
type fakeMatrix struct {
	mu       sync.Mutex
	cond     *sync.Cond
	images   []sentImage
	redacted []id.EventID
	notices  []notice
}

type sentImage struct {
	room    id.RoomID
	data    []byte
	caption string
	event   id.EventID
}

type notice struct {
	user id.UserID
	room id.RoomID
	text string
}

func newFakeMatrix() *fakeMatrix {
	m := &fakeMatrix{}
	m.cond = sync.NewCond(&m.mu)
	return m
}

var _ Matrix = (*fakeMatrix)(nil)

func (m *fakeMatrix) SendImage(_ context.Context, room id.RoomID, data []byte, _, caption string) (id.EventID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evt := id.EventID("$qr" + string(rune('a'+len(m.images))))
	m.images = append(m.images, sentImage{room: room, data: data, caption: caption, event: evt})
	m.cond.Broadcast()
	return evt, nil
}

func (m *fakeMatrix) Redact(_ context.Context, _ id.RoomID, evt id.EventID, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.redacted = append(m.redacted, evt)
	m.cond.Broadcast()
	return nil
}

func (m *fakeMatrix) NotifyUser(_ context.Context, user id.UserID, text string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notices = append(m.notices, notice{user: user, text: text})
	m.cond.Broadcast()
	return nil
}

func (m *fakeMatrix) NotifyRoom(_ context.Context, room id.RoomID, text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notices = append(m.notices, notice{room: room, text: text})
	m.cond.Broadcast()
}

func (m *fakeMatrix) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { m.mu.Lock(); m.cond.Broadcast(); m.mu.Unlock() })
	defer t.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		m.cond.Wait()
	}
	return true
}

// waitNotice waits for a notice containing text and returns it.
func (m *fakeMatrix) waitNotice(text string) (notice, bool) {
	var found notice
	ok := m.waitFor(5*time.Second, func() bool {
		for _, n := range m.notices {
			if containsFold(n.text, text) {
				found = n
				return true
			}
		}
		return false
	})
	return found, ok
}

func (f *fakeClient) BuildPollCreation(name string, optionNames []string, selectable int) *waE2E.Message {
	opts := make([]*waE2E.PollCreationMessage_Option, len(optionNames))
	for i, o := range optionNames {
		opts[i] = &waE2E.PollCreationMessage_Option{OptionName: proto.String(o)}
	}
	return &waE2E.Message{
		PollCreationMessage: &waE2E.PollCreationMessage{Name: proto.String(name), Options: opts, SelectableOptionsCount: proto.Uint32(uint32(selectable))},
		MessageContextInfo:  &waE2E.MessageContextInfo{MessageSecret: []byte("fake-poll-secret-0123456789abcdef")},
	}
}

// fakeVoteCipher stands for WhatsApp's poll vote encryption: the fake
// only needs a vote not to be readable without "decrypting" it.
func fakeVoteCipher(b []byte) []byte {
	out := slices.Clone(b)
	for i := range out {
		out[i] ^= 0x5a
	}
	return out
}

func (f *fakeClient) EncryptPollVote(_ context.Context, poll *types.MessageInfo, vote *waE2E.PollVoteMessage) (*waE2E.PollUpdateMessage, error) {
	plain, err := proto.Marshal(vote)
	if err != nil {
		return nil, err
	}
	return &waE2E.PollUpdateMessage{
		PollCreationMessageKey: f.key(poll.Chat, poll.Sender, poll.ID),
		Vote:                   &waE2E.PollEncValue{EncPayload: fakeVoteCipher(plain), EncIV: []byte("iv")},
	}, nil
}

func (f *fakeClient) DecryptPollVote(_ context.Context, evt *events.Message) (*waE2E.PollVoteMessage, error) {
	u := evt.Message.GetPollUpdateMessage()
	if u == nil {
		return nil, whatsmeow.ErrNotPollUpdateMessage
	}
	var vote waE2E.PollVoteMessage
	if err := proto.Unmarshal(fakeVoteCipher(u.GetVote().GetEncPayload()), &vote); err != nil {
		return nil, fmt.Errorf("failed to decrypt poll vote: %w", err)
	}
	return &vote, nil
}
