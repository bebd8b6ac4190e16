package sms

import (
	"crypto/tls"
	"io"
	"net/http"
	"time"
)

// maxTwilioConns is how many connections to Twilio stay open between
// sends: one per delivery worker sending at once is enough to never open
// (and handshake TLS for) a new one under steady load. http.DefaultTransport
// keeps only two per host, so with more workers sending at once every
// further send paid a TLS handshake.
const maxTwilioConns = 32

// drainLimit is how much of an unread response body is read before it is
// closed, so its connection can be used again (a connection whose body was
// closed unread is dropped).
const drainLimit = 64 << 10

// newTwilioTransport returns the transport for Twilio's API: keep-alive
// with enough idle connections, HTTP/2 when the server offers it, and TLS
// session resumption when a connection must be opened again. It uses the
// system's roots (SSL_CERT_FILE) like http.DefaultTransport.
func newTwilioTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxTwilioConns
	t.MaxIdleConnsPerHost = maxTwilioConns
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = true
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(maxTwilioConns),
	}
	return t
}

// drainingBody reads what is left of a response body (up to drainLimit)
// when it is closed: twilio-go closes bodies after decoding the JSON
// value, which may leave the end of a chunked body unread.
type drainingBody struct {
	io.ReadCloser
}

func (b drainingBody) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, drainLimit)
	return b.ReadCloser.Close()
}
