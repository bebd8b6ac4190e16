package waserver

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/whatsmeow"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"
)

// pairing is a new device's state between the handshake and its
// pair-device-sign answer.
type pairing struct {
	refs []string
	// Set by the phone (ScanQR).
	acct     *Account
	id       uint16
	reqID    string
	keyIndex uint32
}

// offerPairing sends a new device the refs its QR codes are made of.
func (c *conn) offerPairing() {
	reg := c.payload.GetDevicePairingData()
	if reg == nil || len(reg.GetEIdent()) != 32 {
		c.drop()
		return
	}
	p := &pairing{}
	for range 6 {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		p.refs = append(p.refs, "2@"+base64.StdEncoding.EncodeToString(b))
	}
	c.pairing = p
	c.srv.mu.Lock()
	for _, ref := range p.refs {
		c.srv.refs[ref] = c
	}
	c.srv.mu.Unlock()
	refs := make([]waBinary.Node, len(p.refs))
	for i, ref := range p.refs {
		refs[i] = waBinary.Node{Tag: "ref", Content: []byte(ref)}
	}
	_ = c.send(waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{"from": types.ServerJID, "type": "set", "id": c.newID(), "xmlns": "md"},
		Content: []waBinary.Node{{Tag: "pair-device", Content: refs}}})
}

// ScanQR is the primary phone of the account with that number scanning a
// QR code shown by a new device (whatsmeow's QR channel code: ref, Noise
// key, identity key, ADV secret). The phone signs the new device's
// identity with the account key and the server sends pair-success; the
// device is linked once it answers with its own signature.
func (s *Server) ScanQR(code, phone string) error {
	parts := strings.Split(code, ",")
	if len(parts) != 4 {
		return errf("not a WhatsApp QR code")
	}
	noise, err1 := base64.StdEncoding.DecodeString(parts[1])
	ident, err2 := base64.StdEncoding.DecodeString(parts[2])
	adv, err3 := base64.StdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || err3 != nil {
		return errf("malformed QR code")
	}
	acct := s.AddAccount(phone, "")
	s.mu.Lock()
	c := s.refs[parts[0]]
	if c == nil {
		s.mu.Unlock()
		return errf("QR code expired or unknown")
	}
	for _, ref := range c.pairing.refs {
		delete(s.refs, ref)
	}
	s.mu.Unlock()
	if !bytes.Equal(noise, c.static[:]) || !bytes.Equal(ident, c.payload.GetDevicePairingData().GetEIdent()) {
		return errf("QR code does not match the connection's keys")
	}
	return s.pairSuccess(c, acct, ident, adv, waAdv.ADVEncryptionType_E2EE)
}

// pairSuccess signs a new device's identity as the account's phone and
// sends it pair-success.
func (s *Server) pairSuccess(c *conn, acct *Account, ident, adv []byte, accountType waAdv.ADVEncryptionType) error {
	s.mu.Lock()
	id := acct.nextDevice
	acct.nextDevice++
	acct.keyIndex++
	keyIndex := acct.keyIndex
	s.mu.Unlock()
	details, err := proto.Marshal(&waAdv.ADVDeviceIdentity{
		RawID: proto.Uint32(uint32(id) * 7919), Timestamp: proto.Uint64(uint64(time.Now().Unix())), KeyIndex: proto.Uint32(keyIndex),
		AccountType: waAdv.ADVEncryptionType_E2EE.Enum(), DeviceType: waAdv.ADVEncryptionType_E2EE.Enum(),
	})
	if err != nil {
		return err
	}
	msg := append(append(append([]byte(nil), whatsmeow.AdvAccountSignaturePrefix...), details...), ident...)
	sig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*acct.key.Priv), msg)
	signed, err := proto.Marshal(&waAdv.ADVSignedDeviceIdentity{Details: details, AccountSignatureKey: acct.key.Pub[:], AccountSignature: sig[:]})
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, adv)
	mac.Write(signed)
	container, err := proto.Marshal(&waAdv.ADVSignedDeviceIdentityHMAC{Details: signed, HMAC: mac.Sum(nil), AccountType: accountType.Enum()})
	if err != nil {
		return err
	}
	reqID := c.newID()
	c.srv.mu.Lock()
	c.pairing.acct, c.pairing.id, c.pairing.reqID, c.pairing.keyIndex = acct, id, reqID, keyIndex
	c.srv.mu.Unlock()
	return c.send(waBinary.Node{Tag: "iq", Attrs: waBinary.Attrs{"from": types.ServerJID, "type": "set", "id": reqID}, Content: []waBinary.Node{{
		Tag: "pair-success", Content: []waBinary.Node{
			{Tag: "device-identity", Content: container},
			{Tag: "platform", Attrs: waBinary.Attrs{"name": "android"}},
			{Tag: "device", Attrs: waBinary.Attrs{"jid": acct.pnDevice(id), "lid": acct.lidDevice(id)}},
		},
	}}})
}

// pairSigned completes a pairing with the device's signature
// (pair-device-sign): the device is linked and told to reconnect (stream
// error 515), as WhatsApp does.
func (c *conn) pairSigned(iq *waBinary.Node) {
	c.srv.mu.Lock()
	var p pairing
	if c.pairing != nil {
		p = *c.pairing
	}
	c.srv.mu.Unlock()
	if p.acct == nil || iq.Attrs["id"] != p.reqID {
		return
	}
	if iq.Attrs["type"] != "result" {
		c.srv.log.Debug().Str("node", iq.XMLString()).Msg("device refused pairing")
		c.drop()
		return
	}
	raw, _ := iq.GetChildByTag("pair-device-sign", "device-identity").Content.([]byte)
	var signed waAdv.ADVSignedDeviceIdentity
	reg := c.payload.GetDevicePairingData()
	if err := proto.Unmarshal(raw, &signed); err != nil || len(signed.DeviceSignature) != 64 {
		c.drop()
		return
	}
	msg := append(append(append(append([]byte(nil), whatsmeow.AdvDeviceSignaturePrefix...), signed.Details...), reg.GetEIdent()...), p.acct.key.Pub[:]...)
	if !ecc.VerifySignature(ecc.NewDjbECPublicKey([32]byte(reg.GetEIdent())), msg, [64]byte(signed.DeviceSignature)) {
		c.srv.log.Debug().Msg("bad device signature")
		c.drop()
		return
	}
	d := &device{acct: p.acct, id: p.id, noise: c.static, regID: binary.BigEndian.Uint32(reg.GetERegid())}
	copy(d.identity[:], reg.GetEIdent())
	d.skey = preKey{id: binary.BigEndian.Uint32(append([]byte{0}, reg.GetESkeyID()...)), pub: [32]byte(reg.GetESkeyVal()), sig: reg.GetESkeySig()}
	c.srv.mu.Lock()
	p.acct.devices[p.id] = d
	c.srv.mu.Unlock()
	_ = c.send(waBinary.Node{Tag: "stream:error", Attrs: waBinary.Attrs{"code": "515"}})
	time.AfterFunc(100*time.Millisecond, c.drop)
}
