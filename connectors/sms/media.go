package sms

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// Outbound MMS. Twilio fetches the attachment of an MMS from a public URL
// (MediaUrl), so SendMedia binds the delivery to a random token kept only
// in memory (never in the database: no media reference at rest beyond the
// router's sealed queue) and the route RouteMedia streams the attachment
// from its source connector when Twilio asks for it.
const (
	// RouteMedia serves attachments of outbound MMS to Twilio.
	RouteMedia = "GET /sms/media/{token}"
	pathMedia  = "/sms/media/"

	// MaxMMSSize is Twilio's limit on the media of one MMS (5 MB).
	MaxMMSSize = 5 * 1024 * 1024
	// mediaTTL is how long Twilio may fetch an attachment after the
	// message was accepted.
	mediaTTL = 10 * time.Minute
	// mediaMaxFetches is how many times a token may be fetched (Twilio
	// retries a failed fetch).
	mediaMaxFetches = 3
	// mediaMaxTokens bounds the in-memory token table.
	mediaMaxTokens = 10000
)

var (
	// ErrMMSCountry means the recipient's number is outside the US and
	// Canada, where Twilio does not deliver MMS; nothing is sent.
	ErrMMSCountry = errors.New("MMS (picture messages) can only be sent to US and Canadian numbers; send the attachment as a link instead")
	// ErrMediaTooLarge means the attachment is over MaxMMSSize.
	ErrMediaTooLarge = errors.New("the attachment is too large for MMS (the limit is 5 MB)")
	// ErrMediaType means MMS cannot carry the attachment's type.
	ErrMediaType = errors.New("this type of attachment cannot be sent by MMS")
)

// mmsRegions are the regions Twilio delivers MMS to.
var mmsRegions = []string{"US", "CA"}

// mmsTypes are the content types Twilio accepts for MMS
// (https://www.twilio.com/docs/messaging/guides/accepted-mime-types).
var mmsTypes = map[string]bool{
	"image/jpeg": true, "image/jpg": true, "image/gif": true, "image/png": true, "image/bmp": true,
	"audio/basic": true, "audio/l24": true, "audio/mp4": true, "audio/mpeg": true, "audio/ogg": true,
	"audio/vnd.rn-realaudio": true, "audio/vnd.wave": true, "audio/3gpp": true, "audio/3gpp2": true,
	"audio/ac3": true, "audio/webm": true, "audio/amr-nb": true, "audio/amr": true,
	"video/mpeg": true, "video/mp4": true, "video/quicktime": true, "video/webm": true,
	"video/3gpp": true, "video/3gpp2": true, "video/3gpp-tt": true, "video/h261": true,
	"video/h263": true, "video/h263-1998": true, "video/h263-2000": true, "video/h264": true,
	"text/vcard": true, "text/x-vcard": true, "text/csv": true, "text/rtf": true, "text/richtext": true,
	"text/calendar": true, "text/directory": true,
	"application/pdf": true, "application/vcard": true, "application/vnd.apple.pkpass": true,
}

// mmsContentType returns the normalized content type of m if MMS can
// carry it; the type is guessed from the file name when m has none.
func mmsContentType(m *bridge.Media) (string, error) {
	raw := m.MimeType
	if raw == "" && m.FileName != "" {
		raw = mime.TypeByExtension(strings.ToLower(path.Ext(m.FileName)))
	}
	t, _, err := mime.ParseMediaType(raw)
	if err != nil || !mmsTypes[strings.ToLower(t)] {
		shown := strings.ToLower(t)
		if shown == "" {
			shown = "unknown"
		}
		return "", fmt.Errorf("%w (type %s)", ErrMediaType, shown)
	}
	return strings.ToLower(t), nil
}

// checkMMS refuses, as bridge.Permanent, media MMS cannot carry.
func checkMMS(region string, m *bridge.Media) (string, error) {
	if !isMMSRegion(region) {
		return "", bridge.Permanent(fmt.Errorf("sms: %w", ErrMMSCountry))
	}
	if m.Size > MaxMMSSize {
		return "", bridge.Permanent(fmt.Errorf("sms: %w (it is %.1f MB)", ErrMediaTooLarge, float64(m.Size)/(1024*1024)))
	}
	ct, err := mmsContentType(m)
	if err != nil {
		return "", bridge.Permanent(fmt.Errorf("sms: %w", err))
	}
	return ct, nil
}

func isMMSRegion(region string) bool {
	region = strings.ToUpper(region)
	for _, r := range mmsRegions {
		if r == region {
			return true
		}
	}
	return false
}

// mediaEntry is an attachment Twilio may fetch once SendMedia handed it
// the token.
type mediaEntry struct {
	open        func(context.Context) (io.ReadCloser, error)
	contentType string
	// size is the declared size (0: unknown), only compared with the
	// real one in the log.
	size    int64
	expires time.Time
	fetches int
}

// mediaTokens is the in-memory token table.
type mediaTokens struct {
	mu      sync.Mutex
	entries map[string]*mediaEntry
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// add binds a new token to e.
func (t *mediaTokens) add(now time.Time, e *mediaEntry) (string, error) {
	tok, err := newToken()
	if err != nil {
		return "", fmt.Errorf("sms: media token: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.entries == nil {
		t.entries = make(map[string]*mediaEntry)
	}
	for k, v := range t.entries {
		if !now.Before(v.expires) {
			delete(t.entries, k)
		}
	}
	if len(t.entries) >= mediaMaxTokens {
		return "", errors.New("sms: too many MMS attachments waiting for Twilio")
	}
	t.entries[tok] = e
	return tok, nil
}

// take counts a fetch of tok and returns its entry (nil when unknown or
// expired). The token is forgotten after mediaMaxFetches fetches.
func (t *mediaTokens) take(now time.Time, tok string) *mediaEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[tok]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(t.entries, tok)
		return nil
	}
	e.fetches++
	if e.fetches >= mediaMaxFetches {
		delete(t.entries, tok)
	}
	return e
}

func (t *mediaTokens) remove(tok string) {
	t.mu.Lock()
	delete(t.entries, tok)
	t.mu.Unlock()
}

func (t *mediaTokens) clear() {
	t.mu.Lock()
	t.entries = nil
	t.mu.Unlock()
}

// SendMedia implements bridge.MediaSender: an MMS whose MediaUrl is a
// token URL under sms.public_url (served by RouteMedia for 10 minutes),
// with the caption (prefixed like a text message in a group) as Body. A
// caption longer than 1600 characters continues in plain SMS. MMS goes
// only to US and Canadian numbers, up to 5 MB, of the types Twilio
// accepts; other attachments are refused with bridge.Permanent.
func (c *Connector) SendMedia(ctx context.Context, d *bridge.Delivery) (bridge.RemoteID, error) {
	if d.Event == nil || d.Event.Content == nil || d.Event.Content.Media == nil {
		return "", bridge.Permanent(errors.New("sms: delivery has no media"))
	}
	return c.send(ctx, d, true)
}

// bindMedia creates the token through which Twilio fetches d's attachment
// and returns the public URL.
func (c *Connector) bindMedia(d *bridge.Delivery, contentType string) (url, token string, err error) {
	e := &mediaEntry{
		open:        d.OpenMedia,
		contentType: contentType,
		size:        d.Event.Content.Media.Size,
		expires:     c.now().Add(mediaTTL),
	}
	token, err = c.media.add(c.now(), e)
	if err != nil {
		return "", "", err
	}
	return c.publicURL + pathMedia + token, token, nil
}

// handleMedia serves an attachment to Twilio: unknown, expired and used-up
// tokens are 404. The bytes are fetched from the source connector now and
// never stored.
func (c *Connector) handleMedia(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	e := c.media.take(c.now(), r.PathValue("token"))
	if e == nil {
		c.metrics.mediaFetches.WithLabelValues("not_found").Inc()
		http.NotFound(w, r)
		return
	}
	rc, err := e.open(r.Context())
	if err != nil {
		c.log.Warn().Err(err).Msg("Failed to fetch an MMS attachment from its source")
		c.metrics.mediaFetches.WithLabelValues("error").Inc()
		http.Error(w, "attachment unavailable", http.StatusBadGateway)
		return
	}
	defer rc.Close()
	// The declared size (info.size on Matrix) is the sender's claim: the
	// real length is read, up to the MMS limit, so Twilio gets the exact
	// Content-Length and an oversize attachment is refused, never
	// truncated.
	var buf bytes.Buffer
	if e.size > 0 && e.size <= MaxMMSSize {
		buf.Grow(int(e.size))
	}
	n, err := io.Copy(&buf, io.LimitReader(rc, MaxMMSSize+1))
	if err != nil {
		c.log.Warn().Err(err).Msg("Failed to read an MMS attachment from its source")
		c.metrics.mediaFetches.WithLabelValues("error").Inc()
		http.Error(w, "attachment unavailable", http.StatusBadGateway)
		return
	}
	if n > MaxMMSSize {
		c.log.Warn().Int64("declared", e.size).Msg("MMS attachment is over 5 MB; not served")
		c.metrics.mediaFetches.WithLabelValues("too_large").Inc()
		http.Error(w, ErrMediaTooLarge.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if e.size > 0 && n != e.size {
		c.log.Warn().Int64("bytes", n).Int64("declared", e.size).Msg("MMS attachment's real size differs from its declared size; serving the real one")
	}
	w.Header().Set("Content-Type", e.contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	if _, err = w.Write(buf.Bytes()); err != nil {
		c.metrics.mediaFetches.WithLabelValues("error").Inc()
		return
	}
	c.metrics.mediaFetches.WithLabelValues("served").Inc()
}
