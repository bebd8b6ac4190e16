package waserver

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/util/hkdfutil"
	"go.mau.fi/whatsmeow/util/keys"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/pbkdf2"
)

// codePairing is a new device's pairing by code (link_code_companion_reg):
// the companion's wrapped ephemeral key until the phone's user enters the
// code, then the phone's ephemeral key until the companion finishes.
type codePairing struct {
	phone   string
	ref     string
	wrapped []byte // the companion's ephemeral key, wrapped with the code
	eph     *keys.KeyPair
	acct    *Account
}

// linkCode serves the companion's stages of a pairing by code.
func (c *conn) linkCode(iq *waBinary.Node, req waBinary.Node) waBinary.Node {
	stage, _ := req.Attrs["stage"].(string)
	jid, _ := req.Attrs["jid"].(types.JID)
	switch stage {
	case "companion_hello":
		wrapped, _ := req.GetChildByTag("link_code_pairing_wrapped_companion_ephemeral_pub").Content.([]byte)
		noise, _ := req.GetChildByTag("companion_server_auth_key_pub").Content.([]byte)
		if len(wrapped) != 80 || string(noise) != string(c.static[:]) || c.pairing == nil {
			return iqError(iq, 400, "bad-request")
		}
		c.srv.mu.Lock()
		known := c.srv.accounts[jid.User] != nil
		c.srv.mu.Unlock()
		if !known {
			return iqError(iq, 404, "item-not-found")
		}
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		cp := &codePairing{phone: jid.User, ref: base64.RawURLEncoding.EncodeToString(b), wrapped: wrapped}
		c.srv.mu.Lock()
		c.code = cp
		c.srv.mu.Unlock()
		return iqResult(iq, waBinary.Node{Tag: "link_code_companion_reg", Content: []waBinary.Node{
			{Tag: "link_code_pairing_ref", Content: []byte(cp.ref)},
		}})
	case "companion_finish":
		c.srv.mu.Lock()
		var cp *codePairing
		if c.code != nil {
			copied := *c.code
			cp = &copied
		}
		c.srv.mu.Unlock()
		ref, _ := req.GetChildByTag("link_code_pairing_ref").Content.([]byte)
		bundle, _ := req.GetChildByTag("link_code_pairing_wrapped_key_bundle").Content.([]byte)
		ident, _ := req.GetChildByTag("companion_identity_public").Content.([]byte)
		if cp == nil || cp.eph == nil || string(ref) != cp.ref || len(bundle) < 44 || len(ident) != 32 {
			return iqError(iq, 400, "bad-request")
		}
		adv, err := cp.finish(bundle, ident)
		if err != nil {
			c.srv.log.Debug().Err(err).Msg("code pairing: bad key bundle")
			c.srv.mu.Lock()
			c.srv.refused++
			c.srv.mu.Unlock()
			return iqError(iq, 400, "bad-request")
		}
		// The companion's identity must be the one it registered with.
		if string(ident) != string(c.payload.GetDevicePairingData().GetEIdent()) {
			return iqError(iq, 400, "bad-request")
		}
		go func() { _ = c.srv.pairSuccess(c, cp.acct, ident, adv, waAdv.ADVEncryptionType_E2EE) }()
		return iqResult(iq)
	}
	return iqError(iq, 400, "bad-request")
}

func codeKey(code string, salt []byte) cipher.Block {
	block, _ := aes.NewCipher(pbkdf2.Key([]byte(code), salt, 2<<16, 32, sha256.New))
	return block
}

// EnterCode is the user of the account with that number typing a pairing
// code on their phone (Linked devices → Link with phone number instead).
// The phone unwraps the companion's key with it and answers with its own,
// wrapped the same way; the companion then finishes the pairing.
func (s *Server) EnterCode(phone, code string) error {
	user := strings.TrimPrefix(phone, "+")
	code = strings.ReplaceAll(code, "-", "")
	s.mu.Lock()
	var c *conn
	for cand := range s.conns {
		if cand.code != nil && cand.code.phone == user && cand.code.eph == nil {
			c = cand
			break
		}
	}
	acct := s.accounts[user]
	s.mu.Unlock()
	if c == nil || acct == nil {
		return errf("no pairing code is waiting for %s", phone)
	}
	cp := c.code
	// Unwrap the companion's ephemeral key: salt, IV, AES-CTR(key).
	companion := make([]byte, 32)
	cipher.NewCTR(codeKey(code, cp.wrapped[:32]), cp.wrapped[32:48]).XORKeyStream(companion, cp.wrapped[48:80])
	eph := keys.NewKeyPair()
	salt, ivb := make([]byte, 32), make([]byte, 16)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(ivb)
	wrapped := make([]byte, 80)
	copy(wrapped, salt)
	copy(wrapped[32:], ivb)
	cipher.NewCTR(codeKey(code, salt), ivb).XORKeyStream(wrapped[48:], eph.Pub[:])
	s.mu.Lock()
	cp.eph, cp.acct = eph, acct
	cp.wrapped = companion // from now on: the companion's key, unwrapped
	s.mu.Unlock()
	return c.send(waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{"from": types.ServerJID, "type": "link_code_companion_reg", "id": c.newID()},
		Content: []waBinary.Node{{Tag: "link_code_companion_reg", Attrs: waBinary.Attrs{"stage": "primary_hello"}, Content: []waBinary.Node{
			{Tag: "link_code_pairing_ref", Content: []byte(cp.ref)},
			{Tag: "link_code_pairing_wrapped_primary_ephemeral_pub", Content: wrapped},
			{Tag: "primary_identity_pub", Content: acct.key.Pub[:]},
		}}}})
}

// finish opens the companion's key bundle and derives the ADV secret the
// pair-success HMAC is keyed with. A wrong code gives a wrong shared
// secret, so the bundle does not open.
func (cp *codePairing) finish(bundle, ident []byte) ([]byte, error) {
	shared, err := curve25519.X25519(cp.eph.Priv[:], cp.wrapped)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(hkdfutil.SHA256(shared, bundle[:32], []byte("link_code_pairing_key_bundle_encryption_key"), 32))
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, bundle[32:44], bundle[44:], nil)
	if err != nil || len(plain) != 96 || string(plain[:32]) != string(ident) || string(plain[32:64]) != string(cp.acct.key.Pub[:]) {
		return nil, errf("bad key bundle: %v", err)
	}
	identShared, err := curve25519.X25519(cp.acct.key.Priv[:], ident)
	if err != nil {
		return nil, err
	}
	input := append(append(append([]byte(nil), shared...), identShared...), plain[64:]...)
	return hkdfutil.SHA256(input, nil, []byte("adv_secret"), 32), nil
}
