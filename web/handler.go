package web

import (
	"bytes"
	"embed"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// Prefix is where the page is mounted on the appservice listener.
const Prefix = "/_switchboard/web/"

//go:embed static
var static embed.FS

// homeserverSlot is where index.html takes the homeserver's address (an
// attribute value: HTML-escaped).
const homeserverSlot = "{{.Homeserver}}"

// Options configure the page.
type Options struct {
	// Homeserver is the client-server API base URL the page signs users
	// in at with their password (homeserver.address); its origin is added
	// to the CSP's connect-src. "" offers only the pasted OpenID token.
	Homeserver string
}

// Handler serves the page and its files under Prefix.
type Handler struct {
	policy string
	files  map[string]file
}

type file struct {
	body  []byte
	ctype string
	cache string
}

var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// New returns the page's handler. It does no I/O; it fails only for a
// Homeserver that is not an absolute http(s) URL.
func New(opts Options) (*Handler, error) {
	hs, origin, err := homeserver(opts.Homeserver)
	if err != nil {
		return nil, err
	}
	h := &Handler{policy: csp(origin), files: map[string]file{}}
	// Filled by hand, not with html/template: text/template's reflection
	// makes the linker keep every exported method of every package (the
	// binary doubled and its idle RSS grew by 13 MB).
	page, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		return nil, fmt.Errorf("web: index.html: %w", err)
	}
	if bytes.Count(page, []byte(homeserverSlot)) != 1 {
		return nil, fmt.Errorf("web: index.html: %w", ErrTemplate)
	}
	index := bytes.Replace(page, []byte(homeserverSlot), []byte(html.EscapeString(hs)), 1)
	h.files[""] = file{body: index, ctype: "text/html; charset=utf-8", cache: "no-store"}
	err = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "static/index.html" {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("web: %s: no content type for its extension", p)
		}
		body, err := fs.ReadFile(static, p)
		h.files[strings.TrimPrefix(p, "static/")] = file{body: body, ctype: ctype, cache: "no-cache"}
		return err
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// homeserver checks raw and returns it without a trailing slash, and its
// origin.
func homeserver(raw string) (string, string, error) {
	if raw == "" {
		return "", "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%w: %q", ErrHomeserverURL, raw)
	}
	return strings.TrimRight(u.String(), "/"), u.Scheme + "://" + u.Host, nil
}

// ServeHTTP serves the page (GET and HEAD only); every answer, errors
// included, carries the security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header(), h.policy)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	f, found := h.files[name]
	if !ok || !found {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Cache-Control", f.cache)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(f.body)
}
