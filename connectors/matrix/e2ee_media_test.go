//go:build goolm

package matrix_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/internal/testutil/jsclient"
)

// uploadRaw uploads bytes to the homeserver's media repository as token's
// user and returns the mxc URI.
func uploadRaw(t *testing.T, hsURL, token string, data []byte) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, hsURL+"/_matrix/media/v3/upload", bytes.NewReader(data))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		ContentURI string `json:"content_uri"`
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "upload")
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.True(t, strings.HasPrefix(out.ContentURI, "mxc://"), "content_uri %q", out.ContentURI)
	return out.ContentURI
}

// downloadRaw returns what the homeserver's media repository holds for an
// mxc URI, as token's user (authenticated media first, then the legacy
// endpoint).
func downloadRaw(t *testing.T, hsURL, token, mxc string) []byte {
	t.Helper()
	uri, err := id.ParseContentURI(mxc)
	require.NoError(t, err)
	for _, path := range []string{
		fmt.Sprintf("/_matrix/client/v1/media/download/%s/%s", uri.Homeserver, uri.FileID),
		fmt.Sprintf("/_matrix/media/v3/download/%s/%s", uri.Homeserver, uri.FileID),
	} {
		req, err := http.NewRequest(http.MethodGet, hsURL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		data, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		if resp.StatusCode == http.StatusOK {
			return data
		}
	}
	t.Fatalf("download %s failed", mxc)
	return nil
}

// TestEncryptedMediaBothWays: in an encrypted portal, an attachment from
// the loopback leg is encrypted before upload (the homeserver holds only
// ciphertext) and sent with content.file in an encrypted event that
// matrix-js-sdk decrypts; an attachment posted on Matrix with content.file
// (encrypted by the test with mautrix's attachment package and uploaded to
// Dendrite, and the ghost's own attachment forwarded back) reaches the
// loopback leg decrypted. One whose hash does not match is not delivered.
func TestEncryptedMediaBothWays(t *testing.T) {
	e := startWithDendrite(t, func(cfg *config.Config) { cfg.Encryption.Default = true })
	ctx := context.Background()
	sess := e.hs.Register(t, "alice", "alice-password", "ALICEJS")
	js := jsclient.Start(t, e.hs.URL, sess.UserID, sess.AccessToken, sess.DeviceID)
	contact := bridge.Sender{ID: "heidi", DisplayName: "Heidi"}
	room := e.loopPortal(t, idOfString(sess.UserID), contact)
	js.WaitInvite(t, 20*time.Second)
	js.Join(t, room)
	ghost := e.conn.GhostUserID(netLoop, contact.ID).String()

	// Loopback -> Matrix.
	png := []byte("\x89PNG\r\n\x1a\nencrypted canary 7f3a")
	e.lb.PutMedia("ref-1", png)
	require.NoError(t, e.lb.Receive(ctx, &bridge.Event{
		Kind: bridge.KindMessage, Source: bridge.Leg{Chat: "chat-1"}, SourceID: "lb-img", Sender: contact,
		Content: &bridge.Content{Type: bridge.MsgImage, Body: "a caption", Media: &bridge.Media{
			Ref: "ref-1", MimeType: "image/png", FileName: "pic.png", Width: 4, Height: 3,
		}},
	}))
	got := js.WaitMessageFrom(t, room, ghost, 30*time.Second)
	assert.True(t, got.Decrypted, "the ghost's image was encrypted")
	assert.Equal(t, "m.image", got.MsgType)
	assert.Equal(t, "a caption", got.Body)

	var evt event.Event
	status := e.hs.DoJSON(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/event/"+url.PathEscape(got.EventID), sess.AccessToken, nil, &evt)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, event.EventEncrypted.Type, evt.Type.Type)
	evt.Type = event.EventEncrypted
	require.NoError(t, evt.Content.ParseRaw(event.EventEncrypted))
	decrypted, err := e.conn.DecryptEventForTest(ctx, &evt)
	require.NoError(t, err)
	if decrypted.Content.Parsed == nil {
		require.NoError(t, decrypted.Content.ParseRaw(decrypted.Type))
	}
	content := decrypted.Content.AsMessage()
	assert.Equal(t, event.MsgImage, content.MsgType)
	assert.Empty(t, content.URL, "no plaintext url in an encrypted room")
	require.NotNil(t, content.File, "content.file")
	require.True(t, strings.HasPrefix(string(content.File.URL), "mxc://"), "file.url %q", content.File.URL)
	require.NotNil(t, content.Info)
	assert.Equal(t, "image/png", content.Info.MimeType)
	assert.Equal(t, len(png), content.Info.Size)
	assert.Equal(t, "pic.png", content.FileName)

	stored := downloadRaw(t, e.hs.URL, sess.AccessToken, string(content.File.URL))
	assert.NotEqual(t, png, stored, "the homeserver holds ciphertext")
	assert.False(t, bytes.Contains(stored, []byte("encrypted canary")), "the homeserver holds ciphertext")
	plain, err := content.File.Decrypt(stored)
	require.NoError(t, err, "other clients decrypt it with content.file")
	assert.Equal(t, png, plain)

	// Matrix -> loopback: an attachment a client encrypted and uploaded.
	doc := []byte("%PDF-1.4 incoming encrypted canary 2b9c")
	file := attachment.NewEncryptedFile()
	ciphertext := bytes.Clone(doc)
	file.EncryptInPlace(ciphertext)
	mxc := uploadRaw(t, e.hs.URL, sess.AccessToken, ciphertext)
	fileInfo := func(f *attachment.EncryptedFile, mxc string) map[string]any {
		raw, err := json.Marshal(event.EncryptedFileInfo{EncryptedFile: *f, URL: id.ContentURIString(mxc)})
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	sendFile := func(msgtype, name string, size int, file map[string]any) string {
		t.Helper()
		var resp struct {
			EventID string `json:"event_id"`
		}
		path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s", url.PathEscape(room), url.PathEscape(name))
		status := e.hs.DoJSON(t, http.MethodPut, path, sess.AccessToken, map[string]any{
			"msgtype": msgtype, "body": name, "file": file,
			"info": map[string]any{"mimetype": "application/pdf", "size": size},
		}, &resp)
		require.Equal(t, http.StatusOK, status)
		return resp.EventID
	}
	sendFile("m.file", "doc.pdf", len(doc), fileInfo(file, mxc))
	sent := e.lb.WaitSent(1, 15*time.Second)
	require.Len(t, sent, 1)
	assert.Equal(t, bridge.MsgFile, sent[0].Delivery.Event.Content.Type)
	assert.Equal(t, "doc.pdf", sent[0].Delivery.Event.Content.Media.FileName)
	assert.Equal(t, doc, sent[0].Media, "the loopback leg got the plaintext")

	// The ghost's own attachment, forwarded back, decrypts too.
	sendFile("m.image", "fwd.png", len(png), fileInfo(&content.File.EncryptedFile, string(content.File.URL)))
	sent = e.lb.WaitSent(2, 15*time.Second)
	require.Len(t, sent, 2)
	assert.Equal(t, png, sent[1].Media)

	// A file whose hash is not the upload's is refused, not forwarded.
	other := attachment.NewEncryptedFile()
	other.EncryptInPlace(bytes.Clone(doc))
	bad := *file
	bad.Hashes = other.Hashes
	badEvent := sendFile("m.file", "bad.pdf", len(doc), fileInfo(&bad, mxc))
	notice := js.WaitMessageFrom(t, room, e.conn.BotUserID().String(), 30*time.Second)
	assert.Contains(t, notice.Body, "not delivered")
	assert.Len(t, e.lb.Sent(), 2, "nothing was delivered for %s", badEvent)

	for _, secret := range []string{"encrypted canary", file.Key.Key, content.File.Key.Key} {
		assert.NotContains(t, e.logs.String(), secret, "the bridge log holds no plaintext or key")
	}
}
