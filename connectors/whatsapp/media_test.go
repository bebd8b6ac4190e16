package whatsapp

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// TestMediaDeclaredLengthNotTrusted: a WhatsApp attachment whose declared
// FileLength is smaller or larger than its content, or absent, arrives
// whole (the real length counts; its SHA-256 is still checked), and one
// whose content does not match its declared SHA-256 is refused.
func TestMediaDeclaredLengthNotTrusted(t *testing.T) {
	e := newEnv(t)
	f := e.login(alice, aliceJID)
	data := []byte("the real document bytes")
	sum := sha256.Sum256(data)
	for i, tc := range []struct {
		name     string
		declared *uint64
	}{
		{"declared smaller", proto.Uint64(3)},
		{"declared larger", proto.Uint64(uint64(100 * len(data)))},
		{"not declared", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v/doc" + string(rune('a'+i))
			f.media[path] = data
			require.True(t, f.dispatch(message(contactJID, contactJID, "WADOC"+string(rune('A'+i)), &waE2E.Message{DocumentMessage: &waE2E.DocumentMessage{
				FileName: proto.String("doc.txt"), Mimetype: proto.String("text/plain"), DirectPath: proto.String(path),
				MediaKey: []byte("k"), FileSHA256: sum[:], FileLength: tc.declared,
			}})))
			sent := e.mx.WaitSent(i+1, 5*time.Second)
			require.Len(t, sent, i+1)
			require.Equal(t, data, sent[i].Media, "whole, whatever length was declared")
		})
	}

	t.Run("content not matching its hash", func(t *testing.T) {
		f.media["/v/bad"] = []byte("something else entirely")
		ref := &mediaRef{Account: alice, Type: "file", DirectPath: "/v/bad", MediaKey: []byte("k"), SHA256: sum[:], Length: 3}
		_, err := e.wa.DownloadMedia(e.ctx, &bridge.Media{Ref: ref.encode()})
		require.ErrorIs(t, err, whatsmeow.ErrInvalidMediaSHA256)
		require.ErrorIs(t, err, bridge.ErrPermanent)
	})
}
