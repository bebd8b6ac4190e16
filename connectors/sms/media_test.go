package sms_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
)

// sendMediaFromMatrix injects a media message on the loopback leg whose
// bytes the loopback connector serves under ref.
func (e *env) sendMediaFromMatrix(leg bridge.Leg, id, caption string, m *bridge.Media, data []byte) {
	e.t.Helper()
	if data != nil {
		e.mx.PutMedia(m.Ref, data)
	}
	require.NoError(e.t, e.mx.Receive(context.Background(), &bridge.Event{
		Kind: bridge.KindMessage, Source: leg, SourceID: bridge.RemoteID(id),
		Sender:  bridge.Sender{ID: "@alice:example.org", DisplayName: "Alice"},
		Content: &bridge.Content{Type: bridge.MsgImage, Body: caption, Media: m},
	}))
}

// get fetches a path from the connector's routes.
func (e *env) get(method, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

// mediaPath checks that a MediaUrl is under sms.public_url and returns
// its path.
func mediaPath(t *testing.T, mediaURL string) string {
	t.Helper()
	require.True(t, strings.HasPrefix(mediaURL, publicURL+"/sms/media/"), "MediaUrl %q", mediaURL)
	p := strings.TrimPrefix(mediaURL, publicURL)
	token := strings.TrimPrefix(p, "/sms/media/")
	assert.Len(t, token, 43, "32 random bytes, base64url without padding")
	return p
}

// total reads an unlabelled counter from the test registry.
func total(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func waitFailed(t *testing.T, e *env, sourceID string) bridge.StatusReport {
	t.Helper()
	st, ok := e.mx.WaitStatus(5*time.Second, func(r bridge.StatusReport) bool {
		return string(r.SourceID) == sourceID && r.State != bridge.StateRetrying
	})
	require.True(t, ok)
	require.Equal(t, bridge.StateFailed, st.State)
	return st
}

func TestSendMediaServesSourceBytes(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	data := bytes.Repeat([]byte("\x89PNG\r\n\x1a\nimage-bytes-"), 1000)
	e.sendMediaFromMatrix(mxLeg, "$img", "look at this",
		&bridge.Media{Ref: "mxc://example.org/img", MimeType: "image/png", FileName: "cat.png", Size: int64(len(data))}, data)
	reqs := e.twilio.waitRequests(t, 1)
	waitDelivered(t, e, "$img")
	r := reqs[0]
	assert.Equal(t, contactA, r.Get("To"))
	assert.Equal(t, pool1, r.Get("From"))
	assert.Equal(t, "look at this", r.Get("Body"))
	assert.Equal(t, publicURL+"/sms/twilio/status", r.Get("StatusCallback"))
	require.Len(t, r["MediaUrl"], 1)
	p := mediaPath(t, r.Get("MediaUrl"))

	rec := e.get(http.MethodGet, p)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "image/png", rec.Header().Get("Content-Type"))
	assert.Equal(t, strconv.Itoa(len(data)), rec.Header().Get("Content-Length"))
	assert.Equal(t, data, rec.Body.Bytes(), "the media URL serves exactly the source bytes")
	assert.Equal(t, 1.0, counter(t, e, "sb_sms_media_fetches_total", "result", "served"))

	// Only GET.
	for _, m := range []string{http.MethodPost, http.MethodHead, http.MethodPut} {
		assert.Equal(t, http.StatusMethodNotAllowed, e.get(m, p).Code, m)
	}
	// Used up after a few fetches.
	require.Equal(t, http.StatusOK, e.get(http.MethodGet, p).Code)
	require.Equal(t, http.StatusOK, e.get(http.MethodGet, p).Code)
	assert.Equal(t, http.StatusNotFound, e.get(http.MethodGet, p).Code)
	assert.Equal(t, 0, sms.MediaTokenCount(e.sms))
}

func TestSendMediaUnknownSizeAndGroupCaption(t *testing.T) {
	e := newEnv(t)
	e.sms.SetHooks(sms.Hooks{IsGroup: func(context.Context, bridge.ConversationID) bool { return true }})
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	data := []byte("GIF89a-bytes")
	e.sendMediaFromMatrix(mxLeg, "$gif", "", &bridge.Media{Ref: "mxc://example.org/gif", FileName: "x.gif"}, data)
	reqs := e.twilio.waitRequests(t, 1)
	waitDelivered(t, e, "$gif")
	assert.Equal(t, "Alice:", reqs[0].Get("Body"), "a group MMS without caption names the sender")
	rec := e.get(http.MethodGet, mediaPath(t, reqs[0].Get("MediaUrl")))
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "image/gif", rec.Header().Get("Content-Type"), "type guessed from the file name")
	assert.Equal(t, "12", rec.Header().Get("Content-Length"))
	assert.Equal(t, data, rec.Body.Bytes())
}

func TestSendMediaLongCaptionContinuesAsSMS(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	caption := strings.Repeat("lorem ipsum ", 200) // 2400 chars: 2 parts
	e.sendMediaFromMatrix(mxLeg, "$1", caption, &bridge.Media{Ref: "r", MimeType: "image/jpeg", Size: 3}, []byte("jpg"))
	reqs := e.twilio.waitRequests(t, 2)
	waitDelivered(t, e, "$1")
	require.Len(t, reqs, 2)
	assert.NotEmpty(t, reqs[0].Get("MediaUrl"))
	assert.Empty(t, reqs[1]["MediaUrl"], "only the first part carries the attachment")
	assert.Equal(t, caption, reqs[0].Get("Body")+" "+reqs[1].Get("Body"))
	assert.Equal(t, 1.0, total(t, e, "sb_sms_mms_total"))
}

func TestSendMediaTokenExpiredOrUnknown(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	e.sendMediaFromMatrix(mxLeg, "$1", "", &bridge.Media{Ref: "r", MimeType: "image/png", Size: 3}, []byte("png"))
	reqs := e.twilio.waitRequests(t, 1)
	waitDelivered(t, e, "$1")
	assert.Empty(t, reqs[0]["Body"], "no caption: no Body")
	p := mediaPath(t, reqs[0].Get("MediaUrl"))

	assert.Equal(t, http.StatusNotFound, e.get(http.MethodGet, "/sms/media/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").Code, "unknown token")
	assert.Equal(t, http.StatusNotFound, e.get(http.MethodGet, "/sms/media/").Code, "no token")
	sms.ExpireMediaTokens(e.sms)
	assert.Equal(t, http.StatusNotFound, e.get(http.MethodGet, p).Code, "expired token")
	assert.Equal(t, 0, sms.MediaTokenCount(e.sms))
	assert.Equal(t, 2.0, counter(t, e, "sb_sms_media_fetches_total", "result", "not_found"))
}

func TestSendMediaOversizeUnannounced(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	data := make([]byte, sms.MaxMMSSize+1)
	e.sendMediaFromMatrix(mxLeg, "$1", "", &bridge.Media{Ref: "big", MimeType: "image/jpeg"}, data)
	reqs := e.twilio.waitRequests(t, 1)
	waitDelivered(t, e, "$1")
	rec := e.get(http.MethodGet, mediaPath(t, reqs[0].Get("MediaUrl")))
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, "not truncated")
}

func TestSendMediaRefused(t *testing.T) {
	const fr = "+33612345678"
	e := newEnv(t, func(c *config.Config) { c.SMS.AllowedCountries = append(c.SMS.AllowedCountries, "FR") })
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	_, mxFR, _ := e.conversation(fr, "!room2")

	for _, tc := range []struct {
		name, id string
		leg      bridge.Leg
		media    *bridge.Media
		want     error
	}{
		{"oversize", "$big", mxLeg, &bridge.Media{Ref: "big", MimeType: "image/png", Size: sms.MaxMMSSize + 1}, sms.ErrMediaTooLarge},
		{"unsupported type", "$exe", mxLeg, &bridge.Media{Ref: "exe", MimeType: "application/x-msdownload", Size: 10}, sms.ErrMediaType},
		{"unknown type", "$bin", mxLeg, &bridge.Media{Ref: "bin", FileName: "blob", Size: 10}, sms.ErrMediaType},
		{"outside US/CA", "$gb", mxFR, &bridge.Media{Ref: "gb", MimeType: "image/png", Size: 10}, sms.ErrMMSCountry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sendMediaFromMatrix(tc.leg, tc.id, "caption", tc.media, nil)
			st := waitFailed(t, e, tc.id)
			assert.ErrorIs(t, st.Err, bridge.ErrPermanent)
			assert.ErrorIs(t, st.Err, tc.want)
		})
	}
	assert.Empty(t, e.twilio.Requests(), "nothing sent to Twilio")
	assert.Equal(t, 0, sms.MediaTokenCount(e.sms))
	assert.Equal(t, 4.0, counter(t, e, "sb_sms_messages_total", "result", "refused"))
}

func TestSendMediaTwilioRefusalDropsToken(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	e.twilio.fail(http.StatusBadRequest, `{"code":21620,"status":400,"message":"Invalid media URL"}`)
	e.sendMediaFromMatrix(mxLeg, "$1", "", &bridge.Media{Ref: "r", MimeType: "image/png", Size: 3}, []byte("png"))
	waitFailed(t, e, "$1")
	assert.Equal(t, 0, sms.MediaTokenCount(e.sms))
}

// TestCanaryNoMediaAtRest: neither the attachment's bytes nor its token
// reach the SQLite files or the logs.
func TestCanaryNoMediaAtRest(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	const canary = "canary-media-bytes-71c0e9"
	const caption = "canary-caption-5d2a8f"
	e.sendMediaFromMatrix(mxLeg, "$1", caption, &bridge.Media{Ref: "mxc://example.org/canary", MimeType: "image/png", Size: int64(len(canary))}, []byte(canary))
	reqs := e.twilio.waitRequests(t, 1)
	waitDelivered(t, e, "$1")
	p := mediaPath(t, reqs[0].Get("MediaUrl"))
	token := strings.TrimPrefix(p, "/sms/media/")
	rec := e.get(http.MethodGet, p)
	require.Equal(t, canary, rec.Body.String())
	require.NoError(t, e.router.Stop(context.Background()))

	var files []byte
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		data, err := os.ReadFile(e.dbPath + suffix)
		if err == nil {
			files = append(files, data...)
		}
	}
	require.NotEmpty(t, files)
	logs := e.logs.String()
	for _, secret := range []string{canary, token, contactA, caption} {
		assert.NotContains(t, string(files), secret, "database holds %q", secret)
		assert.NotContains(t, logs, secret, "logs hold %q", secret)
	}
}

// TestSendMediaDeclaredSizeNotTrusted: the size an attachment declares
// (info.size on Matrix) neither sets Content-Length nor bounds the read:
// Twilio gets the real bytes with their real length, and an attachment
// really over 5 MB is refused, whatever it declared.
func TestSendMediaDeclaredSizeNotTrusted(t *testing.T) {
	e := newEnv(t)
	_, mxLeg, _ := e.conversation(contactA, "!room1")
	small := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	for i, tc := range []struct {
		name     string
		declared int64
		data     []byte
		wantCode int
	}{
		{"declared smaller than real", 10, small, http.StatusOK},
		{"declared larger than real", 4000, small, http.StatusOK},
		{"declared small, really over 5 MB", 1000, make([]byte, sms.MaxMMSSize+1), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "$m" + strconv.Itoa(i)
			e.sendMediaFromMatrix(mxLeg, id, "", &bridge.Media{Ref: "ref" + strconv.Itoa(i), MimeType: "image/jpeg", Size: tc.declared}, tc.data)
			reqs := e.twilio.waitRequests(t, i+1)
			waitDelivered(t, e, id)
			rec := e.get(http.MethodGet, mediaPath(t, reqs[i].Get("MediaUrl")))
			require.Equal(t, tc.wantCode, rec.Code)
			if tc.wantCode != http.StatusOK {
				assert.Contains(t, rec.Body.String(), "too large")
				return
			}
			assert.Equal(t, strconv.Itoa(len(tc.data)), rec.Header().Get("Content-Length"), "the real length")
			assert.True(t, bytes.Equal(tc.data, rec.Body.Bytes()), "not truncated: got %d bytes", rec.Body.Len())
		})
	}
	assert.Equal(t, 1.0, counter(t, e, "sb_sms_media_fetches_total", "result", "too_large"))
}
