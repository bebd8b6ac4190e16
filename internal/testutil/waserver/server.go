package waserver

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"github.com/rs/zerolog"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
)

// Server is a WhatsApp server for tests. Make one with New, close it with
// Close.
type Server struct {
	log    zerolog.Logger
	http   *httptest.Server
	pool   *x509.CertPool
	static *keys.KeyPair
	chain  []byte

	mu       sync.Mutex
	accounts map[string]*Account // by phone-number user (digits)
	byLID    map[string]*Account // by LID user
	refs     map[string]*conn    // QR refs of connections waiting to pair
	conns    map[*conn]struct{}
	closed   bool
	refused  int               // code pairings whose key bundle did not open
	retries  int               // retry receipts relayed
	groups   map[string]*group // by group JID user
	groupSeq int

	mediaAuth string
	media     map[string][]byte // uploads by ID
}

// Account is one WhatsApp account (a phone number) on the server. Its
// primary phone is played by the server: it signs the identities of the
// devices it links.
type Account struct {
	// PN is the account's phone-number JID, LID its LID (both without
	// device).
	PN, LID types.JID
	// PushName is the name its messages carry.
	PushName string

	key        *keys.KeyPair // account signing key (the phone's identity)
	devices    map[uint16]*device
	nextDevice uint16
	keyIndex   uint32
}

// device is one linked device of an account.
type device struct {
	acct     *Account
	id       uint16
	noise    [32]byte // the device's Noise static key
	regID    uint32
	identity [32]byte
	skey     preKey
	prekeys  []preKey

	// sendMu orders deliveries to the device; pending holds what was
	// delivered and not yet acknowledged, redelivered at login.
	sendMu  sync.Mutex
	pending []waNode
	conn    *conn // logged in and active, or nil

	// Counters for tests.
	logins, pings int
	lastEnc       string
}

// Options configure a Server.
type Options struct {
	// Log receives the server's debug lines (every stanza); default none.
	Log zerolog.Logger
}

// New starts a server on 127.0.0.1 with a fresh TLS certificate and Noise
// key.
func New(opts Options) (*Server, error) {
	cert, pool, err := newTLS()
	if err != nil {
		return nil, errf("tls: %w", err)
	}
	s := &Server{
		log: opts.Log, pool: pool, static: keys.NewKeyPair(),
		accounts: map[string]*Account{}, byLID: map[string]*Account{}, refs: map[string]*conn{}, conns: map[*conn]struct{}{},
		media: map[string][]byte{}, mediaAuth: "test-media-auth", groups: map[string]*group{},
	}
	if s.chain, err = certChain(s.static.Pub); err != nil {
		return nil, errf("cert chain: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/chat", s.serveWS)
	mux.HandleFunc("/mms/", s.serveUpload)
	mux.HandleFunc("/v/t62/", s.serveDownload)
	s.http = httptest.NewUnstartedServer(mux)
	s.http.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.http.StartTLS()
	return s, nil
}

// Close drops every connection and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drop()
	}
	s.http.Close()
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: []string{"web.whatsapp.com"}})
	if err != nil {
		s.log.Debug().Err(err).Msg("websocket accept failed")
		return
	}
	ws.SetReadLimit(1 << 24)
	c := newConn(s, ws)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.CloseNow()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.run(r.Context())
	s.mu.Lock()
	delete(s.conns, c)
	for ref, rc := range s.refs {
		if rc == c {
			delete(s.refs, ref)
		}
	}
	s.mu.Unlock()
}

// AddAccount registers a phone number (E.164, "+" optional) with a push
// name, or returns the account it already has.
func (s *Server) AddAccount(phone, pushName string) *Account {
	user := strings.TrimPrefix(phone, "+")
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[user]; a != nil {
		return a
	}
	lid := fmt.Sprintf("%d", 100000000000000+rand.Int64N(899999999999999))
	a := &Account{
		PN: types.NewJID(user, types.DefaultUserServer), LID: types.NewJID(lid, types.HiddenUserServer),
		PushName: pushName, key: keys.NewKeyPair(), devices: map[uint16]*device{}, nextDevice: 1,
	}
	s.accounts[user] = a
	s.byLID[lid] = a
	return a
}

// account finds the account of a JID (phone number or LID, any device).
// Call with s.mu held.
func (s *Server) account(jid types.JID) *Account {
	switch jid.Server {
	case types.DefaultUserServer, types.LegacyUserServer:
		return s.accounts[jid.User]
	case types.HiddenUserServer:
		return s.byLID[jid.User]
	}
	return nil
}

// deviceOf finds a device by its JID. Call with s.mu held.
func (s *Server) deviceOf(jid types.JID) *device {
	if a := s.account(jid); a != nil {
		return a.devices[jid.Device]
	}
	return nil
}

// Devices returns the phone-number JIDs of an account's linked devices.
func (s *Server) Devices(phone string) []types.JID {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[strings.TrimPrefix(phone, "+")]
	if a == nil {
		return nil
	}
	var out []types.JID
	for id := range a.devices {
		out = append(out, a.pnDevice(id))
	}
	return out
}

// Online reports whether a device is logged in and active now.
func (s *Server) Online(jid types.JID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deviceOf(jid)
	return d != nil && d.conn != nil
}

// DropConnections closes the sockets of an account's devices abruptly,
// as a network failure or a server restart would.
func (s *Server) DropConnections(phone string) int {
	s.mu.Lock()
	var conns []*conn
	for c := range s.conns {
		if c.dev != nil && c.dev.acct.PN.User == strings.TrimPrefix(phone, "+") {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.drop()
	}
	return len(conns)
}

func (a *Account) pnDevice(id uint16) types.JID {
	j := a.PN
	j.Device = id
	return j
}

func (a *Account) lidDevice(id uint16) types.JID {
	j := a.LID
	j.Device = id
	return j
}

// deviceIDs lists the account's devices in order. Call with s.mu held.
func (a *Account) deviceIDs() []uint16 {
	ids := make([]uint16, 0, len(a.devices))
	for id := range a.devices {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}

// Logins counts a device's successful logins.
func (s *Server) Logins(jid types.JID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deviceOf(jid); d != nil {
		return d.logins
	}
	return 0
}

// Pings counts the keep-alive pings a device sent.
func (s *Server) Pings(jid types.JID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deviceOf(jid); d != nil {
		return d.pings
	}
	return 0
}

// LastEncType is the type of the last Signal message delivered to a
// device: "pkmsg" (starts a session), "msg" (an existing session) or
// "skmsg" (a group's sender key).
func (s *Server) LastEncType(jid types.JID) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deviceOf(jid); d != nil {
		return d.lastEnc
	}
	return ""
}

// RefusedPairings counts pairings by code the phone refused because the
// companion's key bundle did not open (a wrong code).
func (s *Server) RefusedPairings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// Retries counts the retry receipts relayed (a device asking for a
// message again because it could not decrypt it).
func (s *Server) Retries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retries
}

// ReuseDeviceID makes the next device linked to the account take that
// device ID: a reinstalled app comes back as the same device with a new
// identity key, as the primary phone does when WhatsApp is reinstalled.
func (s *Server) ReuseDeviceID(phone string, id uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[strings.TrimPrefix(phone, "+")]; a != nil {
		a.nextDevice = id
	}
}
