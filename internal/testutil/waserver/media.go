package waserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	waBinary "go.mau.fi/whatsmeow/binary"
)

// mediaHost is the host the server names for uploads and downloads; any
// host reaches the server through HTTPClient.
const mediaHost = "mmg.whatsapp.net"

// mediaConn answers a media connection query (w:m media_conn): the
// upload auth token and the one media host.
func (c *conn) mediaConn(iq *waBinary.Node) waBinary.Node {
	return iqResult(iq, waBinary.Node{Tag: "media_conn", Attrs: waBinary.Attrs{
		"auth": c.srv.mediaAuth, "ttl": 3600, "auth_ttl": 3600, "max_buckets": 12,
	}, Content: []waBinary.Node{{Tag: "host", Attrs: waBinary.Attrs{"hostname": mediaHost}}}})
}

// serveUpload stores an upload (POST /mms/{type}/{token}?auth&token): the
// token must be the URL-safe base64 of the body's SHA-256 (whatsmeow
// uploads the encrypted file and its MAC), the auth the media
// connection's. It answers the URL and direct path to download it from.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Query().Get("auth") != s.mediaAuth {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	token := r.URL.Query().Get("token")
	if token != base64.URLEncoding.EncodeToString(sum[:]) || !strings.HasSuffix(r.URL.Path, "/"+token) {
		http.Error(w, "hash mismatch", http.StatusBadRequest)
		return
	}
	idb := make([]byte, 12)
	_, _ = rand.Read(idb)
	id := hex.EncodeToString(idb)
	s.mu.Lock()
	s.media[id] = body
	s.mu.Unlock()
	path := "/v/t62/" + id + "?ccb=11-4"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"url": "https://" + mediaHost + path, "direct_path": path})
}

// serveDownload serves a stored upload (GET /v/t62/{id}).
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v/t62/")
	s.mu.Lock()
	body, ok := s.media[id]
	s.mu.Unlock()
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write(body)
}

// Media returns every stored upload, as the server holds it.
func (s *Server) Media() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, 0, len(s.media))
	for _, b := range s.media {
		out = append(out, b)
	}
	return out
}
