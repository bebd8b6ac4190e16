package provision_test

import (
	"context"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
)

// waClient is an in-memory WhatsApp device for logins: it gives the
// connector a QR channel, a pairing code, and lets the test pair it by
// dispatching whatsmeow's own events. Other Client methods are not used by
// a login (the embedded nil interface would panic if they were).
type waClient struct {
	whatsapp.Client

	mu        sync.Mutex
	handlers  []whatsmeow.EventHandlerWithSuccessStatus
	qr        chan whatsmeow.QRChannelItem
	connected bool
	paired    []string
	ready     chan struct{}
}

func newWAClient() *waClient { return &waClient{ready: make(chan struct{})} }

func (f *waClient) Connect() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected = true
	if f.qr != nil {
		select {
		case <-f.ready:
		default:
			close(f.ready)
		}
	}
	return nil
}

func (f *waClient) Disconnect() {
	f.mu.Lock()
	f.connected = false
	f.mu.Unlock()
}

func (f *waClient) IsConnected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *waClient) IsLoggedIn() bool { return f.IsConnected() }

func (f *waClient) Logout(context.Context) error {
	f.Disconnect()
	return nil
}

func (f *waClient) AddEventHandlerWithSuccessStatus(h whatsmeow.EventHandlerWithSuccessStatus) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers = append(f.handlers, h)
	return uint32(len(f.handlers))
}

func (f *waClient) GetQRChannel(context.Context) (<-chan whatsmeow.QRChannelItem, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.qr = make(chan whatsmeow.QRChannelItem, 8)
	// WhatsApp's first event is a code; a pairing code may be asked for
	// after it.
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@first-qr", Timeout: 20 * time.Second}
	return f.qr, nil
}

func (f *waClient) PairPhone(_ context.Context, phone string, _ bool, _ whatsmeow.PairClientType, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paired = append(f.paired, phone)
	return "ABCD-EFGH", nil
}

// code shows another QR code.
func (f *waClient) code(code string) {
	<-f.ready
	f.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: code, Timeout: 20 * time.Second}
}

// pair completes the login as the phone would.
func (f *waClient) pair(jid types.JID) {
	<-f.ready
	f.mu.Lock()
	hs := append([]whatsmeow.EventHandlerWithSuccessStatus(nil), f.handlers...)
	f.mu.Unlock()
	for _, h := range hs {
		h(&events.PairSuccess{ID: jid, Platform: "android"})
	}
	f.qr <- whatsmeow.QRChannelSuccess
	close(f.qr)
	for _, h := range hs {
		h(&events.Connected{})
	}
}

// waSessions hands out the next waClient for each login.
type waSessions struct {
	mu      sync.Mutex
	clients []*waClient
	stored  map[types.JID]*waClient
}

func (s *waSessions) Upgrade(context.Context) error { return nil }

func (s *waSessions) New(context.Context) (whatsapp.Client, error) {
	f := newWAClient()
	s.mu.Lock()
	s.clients = append(s.clients, f)
	s.mu.Unlock()
	return f, nil
}

func (s *waSessions) Load(_ context.Context, jid types.JID) (whatsapp.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.stored[jid]; ok {
		return f, nil
	}
	return nil, whatsapp.ErrNoSession
}

func (s *waSessions) Delete(context.Context, types.JID) error { return nil }

// last is the client of the newest login.
func (s *waSessions) last() *waClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.clients) == 0 {
		return nil
	}
	return s.clients[len(s.clients)-1]
}

// waMatrix is the connector's Matrix side; logins through the API show
// nothing there.
type waMatrix struct{}

func (waMatrix) SendImage(context.Context, id.RoomID, []byte, string, string) (id.EventID, error) {
	return "$img", nil
}
func (waMatrix) Redact(context.Context, id.RoomID, id.EventID, string) error { return nil }
func (waMatrix) NotifyUser(context.Context, id.UserID, string) error         { return nil }
func (waMatrix) NotifyRoom(context.Context, id.RoomID, string)               {}
