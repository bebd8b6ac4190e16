package waserver

import (
	"bytes"
	"context"
	"crypto/cipher"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/keys"
	"google.golang.org/protobuf/proto"
)

// waNode is a stanza kept for delivery.
type waNode = waBinary.Node

// conn is one client connection.
type conn struct {
	srv *Server
	ws  *websocket.Conn

	ctx    context.Context
	cancel context.CancelFunc

	writeMu  sync.Mutex
	writeKey cipher.AEAD
	wctr     uint32
	readKey  cipher.AEAD
	rctr     uint32

	static  [32]byte // the client's Noise static key
	payload *waWa6.ClientPayload

	buf     []byte
	header  bool
	frames  chan []byte
	dropped atomic.Bool
	idCtr   atomic.Uint64

	// Set while pairing (pair.go, paircode.go).
	pairing *pairing
	code    *codePairing
	// dev is the logged-in device.
	dev *device
}

func newConn(s *Server, ws *websocket.Conn) *conn {
	return &conn{srv: s, ws: ws, frames: make(chan []byte, 64)}
}

// run serves the connection until it ends.
func (c *conn) run(ctx context.Context) {
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer c.cancel()
	go c.readPump()
	if err := c.handshake(); err != nil {
		c.srv.log.Debug().Err(err).Msg("handshake failed")
		c.drop()
		return
	}
	c.start()
	for {
		select {
		case <-c.ctx.Done():
			c.ended()
			return
		case frame, ok := <-c.frames:
			if !ok {
				c.ended()
				return
			}
			pt, err := c.readKey.Open(nil, iv(c.rctr), frame, nil)
			c.rctr++
			if err != nil {
				c.srv.log.Debug().Err(err).Msg("undecryptable frame")
				c.drop()
				c.ended()
				return
			}
			raw, err := waBinary.Unpack(pt)
			if err != nil {
				continue
			}
			node, err := waBinary.Unmarshal(raw)
			if err != nil {
				c.srv.log.Debug().Err(err).Msg("undecodable node")
				continue
			}
			c.srv.log.Debug().Str("from", c.name()).Str("node", node.XMLString()).Msg("recv")
			c.handle(node)
		}
	}
}

func (c *conn) name() string {
	if c.dev != nil {
		return c.dev.acct.pnDevice(c.dev.id).String()
	}
	return "unpaired"
}

// readPump splits the websocket's messages into frames (a 3-byte length
// each; the first message starts with WhatsApp's 4-byte header).
func (c *conn) readPump() {
	defer close(c.frames)
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageBinary {
			continue
		}
		if !c.header {
			if len(data) < len(socket.WAConnHeader) || !bytes.Equal(data[:len(socket.WAConnHeader)], socket.WAConnHeader) {
				return
			}
			data = data[len(socket.WAConnHeader):]
			c.header = true
		}
		c.buf = append(c.buf, data...)
		for len(c.buf) >= socket.FrameLengthSize {
			n := int(c.buf[0])<<16 | int(c.buf[1])<<8 | int(c.buf[2])
			if len(c.buf) < socket.FrameLengthSize+n {
				break
			}
			frame := append([]byte(nil), c.buf[socket.FrameLengthSize:socket.FrameLengthSize+n]...)
			c.buf = c.buf[socket.FrameLengthSize+n:]
			select {
			case c.frames <- frame:
			case <-c.ctx.Done():
				return
			}
		}
	}
}

func (c *conn) writeFrame(data []byte) error {
	out := make([]byte, socket.FrameLengthSize+len(data))
	out[0], out[1], out[2] = byte(len(data)>>16), byte(len(data)>>8), byte(len(data))
	copy(out[socket.FrameLengthSize:], data)
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, out)
}

func (c *conn) nextFrame(timeout time.Duration) ([]byte, error) {
	select {
	case f, ok := <-c.frames:
		if !ok {
			return nil, errf("connection closed during handshake")
		}
		return f, nil
	case <-time.After(timeout):
		return nil, errf("handshake timed out")
	}
}

// handshake is the responder's side of the Noise XX handshake; it ends
// with the client's payload (registration or login) and static key.
func (c *conn) handshake() error {
	n, err := newNoise()
	if err != nil {
		return err
	}
	frame, err := c.nextFrame(20 * time.Second)
	if err != nil {
		return err
	}
	var hello waWa6.HandshakeMessage
	if err = proto.Unmarshal(frame, &hello); err != nil {
		return err
	}
	clientEph := hello.GetClientHello().GetEphemeral()
	if len(clientEph) != 32 {
		return errf("bad client hello")
	}
	n.authenticate(clientEph)
	eph := keys.NewKeyPair()
	n.authenticate(eph.Pub[:])
	if err = n.mixShared(eph.Priv, clientEph); err != nil {
		return err
	}
	staticCT := n.encrypt(c.srv.static.Pub[:])
	if err = n.mixShared(c.srv.static.Priv, clientEph); err != nil {
		return err
	}
	certCT := n.encrypt(c.srv.chain)
	out, err := proto.Marshal(&waWa6.HandshakeMessage{ServerHello: &waWa6.HandshakeMessage_ServerHello{
		Ephemeral: eph.Pub[:], Static: staticCT, Payload: certCT,
	}})
	if err != nil {
		return err
	}
	if err = c.writeFrame(out); err != nil {
		return err
	}
	if frame, err = c.nextFrame(20 * time.Second); err != nil {
		return err
	}
	var finish waWa6.HandshakeMessage
	if err = proto.Unmarshal(frame, &finish); err != nil {
		return err
	}
	static, err := n.decrypt(finish.GetClientFinish().GetStatic())
	if err != nil || len(static) != 32 {
		return errf("bad client static: %v", err)
	}
	copy(c.static[:], static)
	if err = n.mixShared(eph.Priv, static); err != nil {
		return err
	}
	payload, err := n.decrypt(finish.GetClientFinish().GetPayload())
	if err != nil {
		return errf("bad client payload: %w", err)
	}
	c.payload = &waWa6.ClientPayload{}
	if err = proto.Unmarshal(payload, c.payload); err != nil {
		return err
	}
	c.readKey, c.writeKey, err = n.finish()
	return err
}

// send writes a node to the client.
func (c *conn) send(node waBinary.Node) error {
	data, err := waBinary.Marshal(node)
	if err != nil {
		return err
	}
	c.srv.log.Debug().Str("to", c.name()).Str("node", node.XMLString()).Msg("send")
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ct := c.writeKey.Seal(nil, iv(c.wctr), data, nil)
	c.wctr++
	return c.writeFrame(ct)
}

// drop closes the socket without a goodbye.
func (c *conn) drop() {
	if c.dropped.CompareAndSwap(false, true) {
		_ = c.ws.CloseNow()
		if c.cancel != nil {
			c.cancel()
		}
	}
}

// ended unregisters a finished connection from its device.
func (c *conn) ended() {
	c.drop()
	if c.dev == nil {
		return
	}
	c.srv.mu.Lock()
	if c.dev.conn == c {
		c.dev.conn = nil
	}
	c.srv.mu.Unlock()
}

// start answers the handshake: a pairing offer for a new device, a login
// for a paired one.
func (c *conn) start() {
	if c.payload.Username == nil {
		c.offerPairing()
		return
	}
	c.login()
}

// login checks a paired device's login payload against the device the
// server knows (its Noise key is its credential) and answers success or
// failure (401: the device was removed).
func (c *conn) login() {
	user := strconv.FormatUint(c.payload.GetUsername(), 10)
	s := c.srv
	s.mu.Lock()
	acct := s.accounts[user]
	var dev *device
	if acct != nil {
		dev = acct.devices[uint16(c.payload.GetDevice())]
	}
	if dev == nil || dev.noise != c.static {
		s.mu.Unlock()
		_ = c.send(waBinary.Node{Tag: "failure", Attrs: waBinary.Attrs{"reason": "401", "location": "test"}})
		time.AfterFunc(100*time.Millisecond, c.drop)
		return
	}
	c.dev = dev
	dev.logins++
	old := dev.conn
	dev.conn = nil // active once the client says so (passive iq)
	s.mu.Unlock()
	if old != nil && old != c {
		old.drop()
	}
	_ = c.send(waBinary.Node{Tag: "success", Attrs: waBinary.Attrs{
		"t": time.Now().Unix(), "lid": acct.lidDevice(dev.id), "location": "test", "props": "1", "abprops": "1",
	}})
}

// activate makes a logged-in device active: it receives what is
// delivered to it from now on and what waited for it.
func (c *conn) activate() {
	d := c.dev
	if d == nil {
		return
	}
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	c.srv.mu.Lock()
	d.conn = c
	pending := append([]waNode(nil), d.pending...)
	c.srv.mu.Unlock()
	for _, n := range pending {
		if err := c.send(n); err != nil {
			return
		}
	}
}

// deliver sends a stanza to a device, or keeps it for when it logs in;
// messages and receipts are kept until acknowledged.
func (s *Server) deliver(d *device, node waBinary.Node, keep bool) {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	s.mu.Lock()
	if keep {
		d.pending = append(d.pending, node)
	}
	c := d.conn
	s.mu.Unlock()
	if c != nil {
		_ = c.send(node)
	}
}

// acked removes a delivered stanza from a device's queue.
func (s *Server) acked(d *device, tag, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range d.pending {
		if n.Tag == tag && n.Attrs["id"] == id {
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			return
		}
	}
}

// Pending returns how many stanzas wait for a device's acknowledgement.
func (s *Server) Pending(jid types.JID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deviceOf(jid); d != nil {
		return len(d.pending)
	}
	return 0
}

func (c *conn) newID() string {
	return "srv-" + strconv.FormatUint(c.idCtr.Add(1), 10)
}
