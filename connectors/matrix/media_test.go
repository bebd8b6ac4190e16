package matrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// TestDownloadEncryptedMedia: DownloadMedia fetches an attachment of an
// encrypted room from the media repository and returns it decrypted; a
// download whose hash does not match is refused; plain mxc references
// work as before.
func TestDownloadEncryptedMedia(t *testing.T) {
	plaintext := []byte("attachment from an encrypted room")
	file := attachment.NewEncryptedFile()
	ciphertext := bytes.Clone(plaintext)
	file.EncryptInPlace(ciphertext)
	var downloads atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/download/localhost/cipher"):
			downloads.Add(1)
			_, _ = w.Write(ciphertext)
		case strings.HasSuffix(r.URL.Path, "/download/localhost/plain"):
			_, _ = w.Write(plaintext)
		case strings.HasSuffix(r.URL.Path, "/download/localhost/tampered"):
			tampered := bytes.Clone(ciphertext)
			tampered[0] ^= 1
			_, _ = w.Write(tampered)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"not here"}`))
		}
	}))
	defer hs.Close()
	cfg := testConfig(t)
	cfg.Homeserver.Address = hs.URL
	e := startBridge(t, cfg, "", nil)

	refFor := func(mxc string) string {
		// As an incoming m.room.message with content.file becomes it.
		raw, err := json.Marshal(map[string]any{
			"msgtype": "m.file", "body": "f.txt",
			"file": event.EncryptedFileInfo{EncryptedFile: *file, URL: id.ContentURIString(mxc)},
		})
		require.NoError(t, err)
		out := e.conn.ContentForTest(raw)
		require.NotNil(t, out.Media)
		return out.Media.Ref
	}
	read := func(ref string) ([]byte, error) {
		rc, err := e.conn.DownloadMedia(context.Background(), &bridge.Media{Ref: ref})
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}

	got, err := read(refFor("mxc://localhost/cipher"))
	require.NoError(t, err)
	assert.Equal(t, plaintext, got)
	assert.Equal(t, int32(1), downloads.Load())

	got, err = read("mxc://localhost/plain")
	require.NoError(t, err)
	assert.Equal(t, plaintext, got, "plain references are unchanged")

	got, err = read(refFor("mxc://localhost/tampered"))
	assert.ErrorIs(t, err, attachment.ErrHashMismatch)
	assert.True(t, errors.Is(err, bridge.ErrPermanent))
	assert.Nil(t, got)

	_, err = read(`{"file":{"url":"mxc://localhost/cipher","v":"v2"}}`)
	assert.True(t, errors.Is(err, bridge.ErrPermanent), "a reference without a key fails before download: %v", err)
	assert.Equal(t, int32(1), downloads.Load())
}
