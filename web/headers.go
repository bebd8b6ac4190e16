package web

import (
	"net/http"
	"strings"
)

// csp is the Content-Security-Policy of every answer. connect is the
// extra origin the page may call (the homeserver, for a password
// sign-in), or "".
func csp(connect string) string {
	connectSrc := "'self'"
	if connect != "" {
		connectSrc += " " + connect
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self'",
		"connect-src " + connectSrc,
		"form-action 'none'",
		"base-uri 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// securityHeaders sets the headers every answer of the page carries.
func securityHeaders(h http.Header, policy string) {
	h.Set("Content-Security-Policy", policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}
