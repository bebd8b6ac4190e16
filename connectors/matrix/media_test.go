package matrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
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

// TestDownloadMediaRefusesOversizeStream: an unencrypted attachment whose
// response has no Content-Length (streamed in chunks) is refused once it
// passes MaxMediaSize — a permanent ErrMediaTooLarge to whoever streams
// it — rather than read without bound or cut short.
func TestDownloadMediaRefusesOversizeStream(t *testing.T) {
	chunk := bytes.Repeat([]byte{'z'}, 1<<20)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/download/localhost/huge") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"not here"}`))
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		for sent := 0; sent <= matrix.MaxMediaSize; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the reader gave up
			}
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
	}))
	defer hs.Close()
	cfg := testConfig(t)
	cfg.Homeserver.Address = hs.URL
	e := startBridge(t, cfg, "", nil)

	rc, err := e.conn.DownloadMedia(context.Background(), &bridge.Media{Ref: "mxc://localhost/huge", Size: 10})
	require.NoError(t, err)
	n, err := io.Copy(io.Discard, rc)
	_ = rc.Close()
	require.ErrorIs(t, err, bridge.ErrMediaTooLarge)
	require.ErrorIs(t, err, bridge.ErrPermanent)
	require.EqualValues(t, matrix.MaxMediaSize, n, "nothing past the limit is passed on")
}

// TestMediaDeclaredSizeIsNotTrusted: on a real homeserver, an attachment
// whose declared size (info.size, bridge.Media.Size) is smaller or larger
// than its content arrives whole both ways, and the event the bridge
// sends declares the real size.
func TestMediaDeclaredSizeIsNotTrusted(t *testing.T) {
	e := startWithDendrite(t)
	ctx := context.Background()
	alice := e.newUser(t, "alice")
	contact := bridge.Sender{ID: "erin", DisplayName: "Erin"}
	room := e.loopPortal(t, idOf(alice), contact)
	alice.join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()
	data := bytes.Repeat([]byte("real attachment bytes "), 200)
	cases := []struct {
		name     string
		declared int
	}{
		{"declared smaller", 1},
		{"declared larger", 10 * len(data)},
	}

	var mxc string
	for i, tc := range cases {
		t.Run("to Matrix, "+tc.name, func(t *testing.T) {
			ref := "size-" + strconv.Itoa(i)
			e.lb.PutMedia(ref, data)
			name := ref + ".bin"
			require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
				Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: bridge.RemoteID("lb-" + ref), Sender: contact,
				Content: &bridge.Content{Type: bridge.MsgFile, Body: name, Media: &bridge.Media{
					Ref: ref, MimeType: "application/octet-stream", FileName: name, Size: int64(tc.declared),
				}},
			}))
			evt := alice.waitEvent(t, room, "ghost file", func(evt roomEvent) bool {
				return evt.Sender == ghost && evt.Content["filename"] == name
			})
			info, _ := evt.Content["info"].(map[string]any)
			assert.EqualValues(t, len(data), info["size"], "the real size, not the declared one")
			mxc, _ = evt.Content["url"].(string)
			require.True(t, strings.HasPrefix(mxc, "mxc://"), "url %q", mxc)
		})
	}
	for i, tc := range cases {
		t.Run("from Matrix, "+tc.name, func(t *testing.T) {
			alice.send(t, room, "m.room.message", map[string]any{
				"msgtype": "m.file", "body": "f.bin", "url": mxc,
				"info": map[string]any{"mimetype": "application/octet-stream", "size": tc.declared},
			})
			sent := e.lb.WaitSent(i+1, 10*time.Second)
			require.Len(t, sent, i+1)
			assert.EqualValues(t, tc.declared, sent[i].Delivery.Event.Content.Media.Size, "what the event declared")
			assert.Equal(t, data, sent[i].Media, "whole, whatever was declared")
		})
	}
}
