package waserver

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"sync"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/whatsmeow/proto/waCert"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/util/gcmutil"
	"go.mau.fi/whatsmeow/util/keys"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
	"google.golang.org/protobuf/proto"
)

// noise is the responder's side of WhatsApp's Noise_XX_25519_AESGCM_SHA256
// handshake (whatsmeow's socket/noisehandshake.go is the initiator's).
type noise struct {
	hash, salt []byte
	key        cipher.AEAD
	counter    uint32
}

func newNoise() (*noise, error) {
	n := &noise{hash: []byte(socket.NoiseStartPattern)} // 32 bytes: used as is
	n.salt = n.hash
	var err error
	if n.key, err = gcmutil.Prepare(n.hash); err != nil {
		return nil, err
	}
	n.authenticate(socket.WAConnHeader)
	return n, nil
}

func (n *noise) authenticate(data []byte) {
	h := sha256.New()
	h.Write(n.hash)
	h.Write(data)
	n.hash = h.Sum(nil)
}

func iv(counter uint32) []byte {
	out := make([]byte, 12)
	binary.BigEndian.PutUint32(out[8:], counter)
	return out
}

func (n *noise) encrypt(plaintext []byte) []byte {
	ct := n.key.Seal(nil, iv(n.counter), plaintext, n.hash)
	n.counter++
	n.authenticate(ct)
	return ct
}

func (n *noise) decrypt(ciphertext []byte) ([]byte, error) {
	pt, err := n.key.Open(nil, iv(n.counter), ciphertext, n.hash)
	n.counter++
	if err != nil {
		return nil, err
	}
	n.authenticate(ciphertext)
	return pt, nil
}

func expand(salt, data []byte) (first, second []byte, err error) {
	r := hkdf.New(sha256.New, data, salt, nil)
	first, second = make([]byte, 32), make([]byte, 32)
	if _, err = io.ReadFull(r, first); err == nil {
		_, err = io.ReadFull(r, second)
	}
	return first, second, err
}

func (n *noise) mixShared(priv *[32]byte, pub []byte) error {
	secret, err := curve25519.X25519(priv[:], pub)
	if err != nil {
		return err
	}
	n.counter = 0
	write, read, err := expand(n.salt, secret)
	if err != nil {
		return err
	}
	n.salt = write
	n.key, err = gcmutil.Prepare(read)
	return err
}

// finish returns the transport ciphers: the client writes with the first
// key and reads with the second, so the server reads with the first.
func (n *noise) finish() (read, write cipher.AEAD, err error) {
	r, w, err := expand(n.salt, nil)
	if err != nil {
		return nil, nil, err
	}
	if read, err = gcmutil.Prepare(r); err != nil {
		return nil, nil, err
	}
	write, err = gcmutil.Prepare(w)
	return read, write, err
}

var (
	rootOnce sync.Once
	rootKey  *keys.KeyPair
)

// RootKey is the test root key that signs every server's certificate
// chain. Set whatsmeow.WACertPubKey to it before connecting:
//
//	whatsmeow.WACertPubKey = waserver.RootKey()
func RootKey() [32]byte {
	rootOnce.Do(func() { rootKey = keys.NewKeyPair() })
	return *rootKey.Pub
}

// certChain is the Noise certificate chain for a server static key: an
// intermediate signed by the root, a leaf for static signed by the
// intermediate, as whatsmeow's verifyServerCert checks.
func certChain(static *[32]byte) ([]byte, error) {
	RootKey()
	inter := keys.NewKeyPair()
	interDetails, err := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{
		Serial: proto.Uint32(7), IssuerSerial: proto.Uint32(0), Key: inter.Pub[:],
	})
	if err != nil {
		return nil, err
	}
	leafDetails, err := proto.Marshal(&waCert.CertChain_NoiseCertificate_Details{
		Serial: proto.Uint32(8), IssuerSerial: proto.Uint32(7), Key: static[:],
	})
	if err != nil {
		return nil, err
	}
	interSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*rootKey.Priv), interDetails)
	leafSig := ecc.CalculateSignature(ecc.NewDjbECPrivateKey(*inter.Priv), leafDetails)
	return proto.Marshal(&waCert.CertChain{
		Intermediate: &waCert.CertChain_NoiseCertificate{Details: interDetails, Signature: interSig[:]},
		Leaf:         &waCert.CertChain_NoiseCertificate{Details: leafDetails, Signature: leafSig[:]},
	})
}
