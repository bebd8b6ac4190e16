package matrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"maunium.net/go/mautrix/crypto/attachment"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// A Media.Ref made by this connector is either a bare mxc:// URI (an
// attachment in a room without encryption, as before) or, for an
// attachment of an encrypted room, the JSON of its content.file
// (event.EncryptedFileInfo: the mxc URI with the key, IV and hash needed
// to decrypt it). The key never leaves the router's sealed queue payload:
// the core stores Media.Ref only there.

// encryptedMediaRef is the JSON form of the reference to an encrypted
// attachment.
type encryptedMediaRef struct {
	File *event.EncryptedFileInfo `json:"file"`
}

// encodeMediaRef returns the Media.Ref for content's attachment, or "" when
// it has none.
func encodeMediaRef(content *event.MessageEventContent) string {
	if file := content.File; file != nil {
		if file.URL == "" {
			return ""
		}
		ref, err := json.Marshal(encryptedMediaRef{File: file})
		if err != nil {
			return ""
		}
		return string(ref)
	}
	return string(content.URL)
}

// decodeMediaRef parses a Media.Ref: the mxc URI to download and, for an
// encrypted attachment, how to decrypt it (nil otherwise). The decryption
// parameters are checked here so that a bad reference fails before any
// download.
func decodeMediaRef(ref string) (id.ContentURI, *attachment.EncryptedFile, error) {
	var (
		uriString = ref
		file      *attachment.EncryptedFile
	)
	if strings.HasPrefix(ref, "{") {
		var parsed encryptedMediaRef
		if err := json.Unmarshal([]byte(ref), &parsed); err != nil {
			return id.ContentURI{}, nil, bridge.Permanent(fmt.Errorf("matrix: bad encrypted media reference: %w", err))
		} else if parsed.File == nil {
			return id.ContentURI{}, nil, bridge.Permanent(errors.New("matrix: encrypted media reference without a file"))
		}
		file = &parsed.File.EncryptedFile
		if err := file.PrepareForDecryption(); err != nil {
			return id.ContentURI{}, nil, bridge.Permanent(fmt.Errorf("matrix: encrypted media reference: %w", err))
		}
		uriString = string(parsed.File.URL)
	}
	uri, err := id.ParseContentURI(uriString)
	if err == nil && uri.IsEmpty() {
		err = errors.New("empty URI")
	}
	if err != nil {
		return id.ContentURI{}, nil, bridge.Permanent(fmt.Errorf("matrix: media reference is not an mxc URI: %w", err))
	}
	return uri, file, nil
}

// decryptMedia reads an encrypted attachment (at most MaxMediaSize bytes)
// and returns its plaintext. The SHA-256 of the ciphertext must match the
// one in the event, or nothing is returned.
func decryptMedia(file *attachment.EncryptedFile, ciphertext io.Reader) (io.ReadCloser, error) {
	data, err := io.ReadAll(io.LimitReader(ciphertext, MaxMediaSize+1))
	if err != nil {
		return nil, fmt.Errorf("matrix: read media: %w", err)
	} else if len(data) > MaxMediaSize {
		return nil, bridge.Permanent(ErrMediaTooLarge)
	}
	if err = file.DecryptInPlace(data); err != nil {
		return nil, bridge.Permanent(fmt.Errorf("matrix: decrypt media: %w", err))
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// limitedBody is the body of an unencrypted media download, refused (never
// truncated) past a limit: once more than limit bytes arrive, Read fails
// with a permanent ErrMediaTooLarge, so a reader that streams the
// attachment (rather than ReadMedia, which has its own limit) cannot be fed
// more. The homeserver's Content-Length is checked before, for an early
// refusal; this covers a response without one. The size declared in the
// event (info.size, bridge.Media.Size) is never used for either.
type limitedBody struct {
	rc io.ReadCloser
	// left is how many more bytes may be read; below zero, the limit was
	// crossed.
	left int64
}

func newLimitedBody(rc io.ReadCloser, limit int64) *limitedBody {
	return &limitedBody{rc: rc, left: limit}
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, bridge.Permanent(ErrMediaTooLarge)
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), bridge.Permanent(ErrMediaTooLarge)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// encryptMedia encrypts data in place for an encrypted room and returns
// the content.file for it, to be completed with the upload's URL.
func encryptMedia(data []byte) *event.EncryptedFileInfo {
	file := attachment.NewEncryptedFile()
	file.EncryptInPlace(data)
	return &event.EncryptedFileInfo{EncryptedFile: *file}
}
