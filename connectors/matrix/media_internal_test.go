package matrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// encryptedContent encrypts plaintext with mautrix's attachment package,
// as a Matrix client would, and returns the ciphertext and an m.image
// whose content.file points at mxc.
func encryptedContent(t *testing.T, plaintext []byte, mxc string) ([]byte, *event.MessageEventContent) {
	t.Helper()
	file := attachment.NewEncryptedFile()
	ciphertext := bytes.Clone(plaintext)
	file.EncryptInPlace(ciphertext)
	require.NotEqual(t, plaintext, ciphertext)
	// Through JSON, as the event arrives from the homeserver.
	raw, err := json.Marshal(map[string]any{
		"msgtype": "m.image", "body": "secret.png",
		"info": map[string]any{"mimetype": "image/png", "size": len(plaintext)},
		"file": event.EncryptedFileInfo{EncryptedFile: *file, URL: id.ContentURIString(mxc)},
	})
	require.NoError(t, err)
	var content event.MessageEventContent
	require.NoError(t, json.Unmarshal(raw, &content))
	require.NotNil(t, content.File)
	require.Empty(t, content.URL)
	return ciphertext, &content
}

func TestMediaRefRoundTrip(t *testing.T) {
	// A room without encryption: the reference stays a bare mxc URI.
	out := toContent(&event.MessageEventContent{MsgType: event.MsgImage, Body: "a.png", URL: "mxc://localhost/plain"})
	require.NotNil(t, out.Media)
	assert.Equal(t, "mxc://localhost/plain", out.Media.Ref)
	uri, file, err := decodeMediaRef(out.Media.Ref)
	require.NoError(t, err)
	assert.Nil(t, file)
	assert.Equal(t, "mxc://localhost/plain", uri.String())

	// An encrypted room: the reference carries the URI and the key.
	plaintext := []byte("\x89PNG\r\n\x1a\nsecret pixels")
	_, content := encryptedContent(t, plaintext, "mxc://localhost/cipher")
	out = toContent(content)
	require.NotNil(t, out.Media)
	assert.Equal(t, bridge.MsgImage, out.Type)
	assert.Equal(t, "image/png", out.Media.MimeType)
	assert.Equal(t, "secret.png", out.Media.FileName)
	assert.NotEqual(t, "mxc://localhost/cipher", out.Media.Ref, "the key must travel with the reference")
	assert.Contains(t, out.Media.Ref, content.File.Key.Key)
	uri, file, err = decodeMediaRef(out.Media.Ref)
	require.NoError(t, err)
	assert.Equal(t, "mxc://localhost/cipher", uri.String())
	require.NotNil(t, file)
	assert.Equal(t, content.File.Key, file.Key)
	assert.Equal(t, content.File.InitVector, file.InitVector)
	assert.Equal(t, content.File.Hashes, file.Hashes)

	// The reference survives the router's JSON round trip of bridge.Media.
	raw, err := json.Marshal(out.Media)
	require.NoError(t, err)
	var media bridge.Media
	require.NoError(t, json.Unmarshal(raw, &media))
	assert.Equal(t, out.Media.Ref, media.Ref)

	// content.file without a URL is no attachment.
	content.File.URL = ""
	out = toContent(content)
	assert.Equal(t, bridge.MsgText, out.Type)
	assert.Nil(t, out.Media)
}

func TestDecodeMediaRefRefusesBadRefs(t *testing.T) {
	_, content := encryptedContent(t, []byte("attachment bytes"), "mxc://localhost/f")
	good := encodeMediaRef(content)
	mutate := func(fn func(*event.EncryptedFileInfo)) string {
		var ref encryptedMediaRef
		require.NoError(t, json.Unmarshal([]byte(good), &ref))
		fn(ref.File)
		raw, err := json.Marshal(ref)
		require.NoError(t, err)
		return string(raw)
	}
	for name, ref := range map[string]string{
		"empty":         "",
		"not mxc":       "https://example.com/x",
		"bad JSON":      "{",
		"no file":       `{"file":null}`,
		"no URL":        mutate(func(f *event.EncryptedFileInfo) { f.URL = "" }),
		"http URL":      mutate(func(f *event.EncryptedFileInfo) { f.URL = "https://example.com/x" }),
		"wrong version": mutate(func(f *event.EncryptedFileInfo) { f.Version = "v1" }),
		"wrong alg":     mutate(func(f *event.EncryptedFileInfo) { f.Key.Algorithm = "A128CBC" }),
		"short key":     mutate(func(f *event.EncryptedFileInfo) { f.Key.Key = f.Key.Key[1:] }),
		"no hash":       mutate(func(f *event.EncryptedFileInfo) { f.Hashes.SHA256 = "" }),
	} {
		_, _, err := decodeMediaRef(ref)
		assert.Error(t, err, name)
		assert.True(t, errors.Is(err, bridge.ErrPermanent), "%s: %v is permanent", name, err)
	}
}

func TestDecryptMedia(t *testing.T) {
	plaintext := []byte(strings.Repeat("attachment bytes ", 1000))
	ciphertext, content := encryptedContent(t, plaintext, "mxc://localhost/cipher")
	ref := toContent(content).Media.Ref

	open := func(ref string, data []byte) ([]byte, error) {
		_, file, err := decodeMediaRef(ref)
		require.NoError(t, err)
		rc, err := decryptMedia(file, bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	got, err := open(ref, ciphertext)
	require.NoError(t, err)
	assert.Equal(t, plaintext, got)

	// A changed byte fails the hash check: nothing is returned.
	tampered := bytes.Clone(ciphertext)
	tampered[10] ^= 1
	got, err = open(ref, tampered)
	assert.ErrorIs(t, err, attachment.ErrHashMismatch)
	assert.True(t, errors.Is(err, bridge.ErrPermanent))
	assert.Nil(t, got)

	// So does a reference whose hash is not the file's.
	_, otherContent := encryptedContent(t, []byte("other"), "mxc://localhost/other")
	wrongHash := *content
	file := *content.File
	file.Hashes = otherContent.File.Hashes
	wrongHash.File = &file
	got, err = open(encodeMediaRef(&wrongHash), ciphertext)
	assert.ErrorIs(t, err, attachment.ErrHashMismatch)
	assert.Nil(t, got)
}

func TestEncryptMedia(t *testing.T) {
	plaintext := []byte("outgoing attachment")
	data := bytes.Clone(plaintext)
	file := encryptMedia(data)
	assert.NotEqual(t, plaintext, data, "encrypted in place")
	file.URL = "mxc://localhost/up"
	ref := encodeMediaRef(&event.MessageEventContent{MsgType: event.MsgFile, File: file})
	_, dec, err := decodeMediaRef(ref)
	require.NoError(t, err)
	rc, err := decryptMedia(dec, bytes.NewReader(data))
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	assert.Equal(t, plaintext, got)

	// What goes into the event is what other clients decrypt with.
	raw, err := json.Marshal(&event.MessageEventContent{MsgType: event.MsgFile, Body: "f", File: file})
	require.NoError(t, err)
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(raw, &parsed))
	assert.NotContains(t, parsed, "url")
	f, _ := parsed["file"].(map[string]any)
	assert.Equal(t, "mxc://localhost/up", f["url"])
	assert.Equal(t, "v2", f["v"])
	var ef attachment.EncryptedFile
	fileRaw, _ := json.Marshal(f)
	require.NoError(t, json.Unmarshal(fileRaw, &ef))
	plain, err := ef.Decrypt(data)
	require.NoError(t, err)
	assert.Equal(t, plaintext, plain)
}

// ContentForTest converts raw m.room.message content as an incoming event
// would be (toContent).
func (c *Connector) ContentForTest(raw []byte) *bridge.Content {
	var content event.MessageEventContent
	if err := json.Unmarshal(raw, &content); err != nil {
		panic(err)
	}
	return toContent(&content)
}

// TestLimitedBody: an unencrypted download is returned whole up to the
// limit and refused (a permanent ErrMediaTooLarge, never a silent
// truncation) past it, whatever size the event declared.
func TestLimitedBody(t *testing.T) {
	const limit = 10
	for _, tc := range []struct {
		name    string
		size    int
		tooBig  bool
		bufSize int
	}{
		{"empty", 0, false, 4},
		{"under the limit", 7, false, 3},
		{"at the limit", limit, false, 64},
		{"one byte over", limit + 1, true, 64},
		{"one byte over, small reads", limit + 1, true, 1},
		{"far over", 10 * limit, true, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("x"), tc.size)
			body := newLimitedBody(io.NopCloser(bytes.NewReader(data)), limit)
			got := []byte{}
			buf := make([]byte, tc.bufSize)
			var err error
			for err == nil {
				var n int
				n, err = body.Read(buf)
				got = append(got, buf[:n]...)
			}
			require.NoError(t, body.Close())
			if tc.tooBig {
				require.ErrorIs(t, err, ErrMediaTooLarge)
				require.ErrorIs(t, err, bridge.ErrPermanent)
				require.Len(t, got, limit, "never more than the limit")
				_, err = body.Read(buf)
				require.ErrorIs(t, err, ErrMediaTooLarge, "and it stays refused")
				return
			}
			require.ErrorIs(t, err, io.EOF)
			require.Equal(t, data, got)
		})
	}
}
