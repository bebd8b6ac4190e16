package waserver_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/store/sqlstore/upgrades"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/internal/testutil/dbtest"
	"github.com/switchboard-bridge/switchboard/internal/testutil/testenv"
	"github.com/switchboard-bridge/switchboard/internal/testutil/waserver"
)

// inbox collects a client's events.
type inbox struct {
	mu     sync.Mutex
	events []any
}

func (b *inbox) add(evt any) {
	b.mu.Lock()
	b.events = append(b.events, evt)
	b.mu.Unlock()
}

func (b *inbox) messages() []*events.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*events.Message
	for _, e := range b.events {
		if m, ok := e.(*events.Message); ok {
			out = append(out, m)
		}
	}
	return out
}

func (b *inbox) receipts() []*events.Receipt {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*events.Receipt
	for _, e := range b.events {
		if r, ok := e.(*events.Receipt); ok {
			out = append(out, r)
		}
	}
	return out
}

// newClient is a whatsmeow client on its own SQLite store, paired with
// the account of phone on srv.
func newClient(t *testing.T, srv *waserver.Server, phone, name string) (*whatsmeow.Client, *inbox) {
	t.Helper()
	ctx := context.Background()
	logs := &testenv.SyncBuffer{}
	db, err := database.Open(ctx, dbtest.SQLite(t), zerolog.New(logs))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	container := sqlstore.NewWithWrappedDB(db.Child("whatsmeow_version", upgrades.Table, nil), nil)
	require.NoError(t, container.Upgrade(ctx))
	cli := whatsmeow.NewClient(container.NewDevice(), nil)
	box := &inbox{}
	cli.AddEventHandler(box.add)
	srv.AddAccount(phone, name)
	require.NoError(t, srv.Pair(ctx, cli, phone))
	t.Cleanup(cli.Disconnect)
	return cli, box
}

func newServer(t *testing.T) *waserver.Server {
	t.Helper()
	whatsmeow.WACertPubKey = waserver.RootKey()
	srv, err := waserver.New(waserver.Options{})
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// Two real whatsmeow clients pair through the server, find each other
// with usync, and exchange Signal-encrypted messages and receipts both
// ways; a client that was offline gets what was sent meanwhile.
func TestTwoClientsTalk(t *testing.T) {
	srv := newServer(t)
	ctx := context.Background()
	alice, aliceBox := newClient(t, srv, "+14155550101", "Alice")
	bob, bobBox := newClient(t, srv, "+14155550177", "Bob")
	require.True(t, alice.IsLoggedIn())

	on, err := alice.IsOnWhatsApp(ctx, []string{"+14155550177", "+14155550199"})
	require.NoError(t, err)
	require.Len(t, on, 2)
	require.True(t, on[0].IsIn)
	require.False(t, on[1].IsIn)
	bobJID := on[0].JID
	require.Equal(t, types.NewJID("14155550177", types.DefaultUserServer), bobJID)

	resp, err := alice.SendMessage(ctx, bobJID, &waE2E.Message{Conversation: proto.String("hello bob")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(bobBox.messages()) == 1 }, 10*time.Second, 20*time.Millisecond)
	got := bobBox.messages()[0]
	require.Equal(t, "hello bob", got.Message.GetConversation())
	require.Equal(t, resp.ID, got.Info.ID)
	require.Equal(t, "Alice", got.Info.PushName)
	require.Eventually(t, func() bool { return len(aliceBox.receipts()) > 0 }, 10*time.Second, 20*time.Millisecond, "delivery receipt")

	_, err = bob.SendMessage(ctx, got.Info.Chat, &waE2E.Message{Conversation: proto.String("hi alice")})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(aliceBox.messages()) == 1 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "hi alice", aliceBox.messages()[0].Message.GetConversation())

	// Offline delivery: bob is gone while alice sends.
	bob.Disconnect()
	_, err = alice.SendMessage(ctx, bobJID, &waE2E.Message{Conversation: proto.String("while you were away")})
	require.NoError(t, err)
	// The server relays after acknowledging alice's send: wait for it.
	require.Eventually(t, func() bool { return srv.Pending(*bob.Store.ID) > 0 }, 10*time.Second, 20*time.Millisecond, "kept for bob")
	require.NoError(t, bob.Connect())
	require.Eventually(t, func() bool { return len(bobBox.messages()) == 2 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "while you were away", bobBox.messages()[1].Message.GetConversation())
	require.Eventually(t, func() bool { return srv.Pending(*bob.Store.ID) == 0 }, 10*time.Second, 20*time.Millisecond)
}
