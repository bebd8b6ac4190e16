package whatsapp

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCommon"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/proto/waHistorySync"
	"go.mau.fi/whatsmeow/proto/waWeb"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"
)

// The fake phone's side of history: the connector downloads a history
// sync from its notification (here the inline payload, zlib-compressed
// protobuf as WhatsApp sends it) and asks for more with an on-demand
// request, which the test answers with another history sync.

var _ historyClient = (*fakeClient)(nil)

// historyDownloads counts DownloadHistorySync calls per fake client.
var historyDownloads sync.Map // *fakeClient -> int

// DownloadHistorySync decodes the notification's inline payload, as
// whatsmeow does before it downloads anything.
func (f *fakeClient) DownloadHistorySync(_ context.Context, notif *waE2E.HistorySyncNotification, _ bool) (*waHistorySync.HistorySync, error) {
	n, _ := historyDownloads.LoadOrStore(f, 0)
	historyDownloads.Store(f, n.(int)+1)
	if notif.InitialHistBootstrapInlinePayload == nil {
		return nil, errors.New("fake: only inline history payloads")
	}
	zr, err := zlib.NewReader(bytes.NewReader(notif.InitialHistBootstrapInlinePayload))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var hs waHistorySync.HistorySync
	return &hs, proto.Unmarshal(raw, &hs)
}

// BuildHistorySyncRequest is whatsmeow's own (it uses no client state).
func (f *fakeClient) BuildHistorySyncRequest(last *types.MessageInfo, count int) *waE2E.Message {
	return (&whatsmeow.Client{}).BuildHistorySyncRequest(last, count)
}

// histMsg is one message of a history sync conversation.
type histMsg struct {
	id     string
	sender types.JID // participant in groups; EmptyJID in one-to-one chats
	fromMe bool
	body   string
	at     time.Time
}

// historyConv is a history sync conversation with msgs, newest first as
// WhatsApp sends them.
func historyConv(jid types.JID, name string, msgs ...histMsg) *waHistorySync.Conversation {
	conv := &waHistorySync.Conversation{ID: proto.String(jid.String())}
	if name != "" {
		conv.Name = proto.String(name)
	}
	var last uint64
	for i := len(msgs) - 1; i >= 0; i-- {
		m := msgs[i]
		web := &waWeb.WebMessageInfo{
			Key:              &waCommon.MessageKey{RemoteJID: proto.String(jid.String()), FromMe: proto.Bool(m.fromMe), ID: proto.String(m.id)},
			Message:          &waE2E.Message{Conversation: proto.String(m.body)},
			MessageTimestamp: proto.Uint64(uint64(m.at.Unix())),
			PushName:         proto.String("Carol"),
		}
		if !m.sender.IsEmpty() {
			web.Participant = proto.String(m.sender.String())
		}
		conv.Messages = append(conv.Messages, &waHistorySync.HistorySyncMsg{Message: web})
		last = max(last, uint64(m.at.Unix()))
	}
	conv.LastMsgTimestamp = proto.Uint64(last)
	return conv
}

// historyNotification is the protocol message from the account's phone
// that announces a history sync, carrying it inline.
func historyNotification(t testing.TB, own types.JID, typ waHistorySync.HistorySync_HistorySyncType, convs ...*waHistorySync.Conversation) *events.Message {
	t.Helper()
	raw, err := proto.Marshal(&waHistorySync.HistorySync{SyncType: typ.Enum(), Conversations: convs})
	require.NoError(t, err)
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	_, err = zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	self := own.ToNonAD()
	evt := message(self, own, "hsn-"+typ.String(), &waE2E.Message{ProtocolMessage: &waE2E.ProtocolMessage{
		Type: waE2E.ProtocolMessage_HISTORY_SYNC_NOTIFICATION.Enum(),
		HistorySyncNotification: &waE2E.HistorySyncNotification{
			SyncType:                          waE2E.HistorySyncType(typ).Enum(),
			InitialHistBootstrapInlinePayload: buf.Bytes(),
		},
	}})
	evt.Info.IsFromMe = true
	return evt
}
