package daemon

import (
	"context"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// HTTPLimits bound the public listener, which Twilio, the homeserver and
// anyone else on the network can reach. Zero fields take the defaults of
// DefaultHTTPLimits; tests pass short ones.
type HTTPLimits struct {
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// trickled a byte at a time is cut off.
	ReadTimeout time.Duration
	// WriteTimeout bounds the handler's work up to its first write, and
	// then each further write: a streamed response (media served to
	// Twilio) goes on as long as the client keeps reading, while a client
	// that stops reading is cut off.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections with no request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request headers.
	MaxHeaderBytes int
	// MaxConns caps open connections; further ones wait to be accepted.
	MaxConns int
}

// DefaultHTTPLimits are the limits of the public listener.
var DefaultHTTPLimits = HTTPLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       60 * time.Second,
	WriteTimeout:      60 * time.Second,
	IdleTimeout:       90 * time.Second,
	MaxHeaderBytes:    64 << 10,
	MaxConns:          256,
}

func (l HTTPLimits) withDefaults() HTTPLimits {
	d := DefaultHTTPLimits
	if l.ReadHeaderTimeout > 0 {
		d.ReadHeaderTimeout = l.ReadHeaderTimeout
	}
	if l.ReadTimeout > 0 {
		d.ReadTimeout = l.ReadTimeout
	}
	if l.WriteTimeout > 0 {
		d.WriteTimeout = l.WriteTimeout
	}
	if l.IdleTimeout > 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	if l.MaxConns > 0 {
		d.MaxConns = l.MaxConns
	}
	d.ReadHeaderTimeout = min(d.ReadHeaderTimeout, d.ReadTimeout)
	return d
}

// newServer returns the HTTP server for h with the limits l (defaults
// filled in) and base as every request's parent context.
func newServer(h http.Handler, l HTTPLimits, base context.Context) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           writeDeadlines(h, l.WriteTimeout),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// limitListener caps the connections ln hands out at l.MaxConns.
func limitListener(ln net.Listener, l HTTPLimits) net.Listener {
	return netutil.LimitListener(ln, l.withDefaults().MaxConns)
}

// writeDeadlines moves the write deadline window ahead before each write,
// so the server's WriteTimeout bounds a stalled client rather than a
// long response.
func writeDeadlines(next http.Handler, window time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, window: window}
		// The server's own writer sets deadlines itself: no controller
		// (an allocation per request) is needed to reach it.
		if d, ok := w.(writeDeadliner); ok {
			dw.dl = d
		} else {
			dw.dl = http.NewResponseController(w)
		}
		next.ServeHTTP(dw, r)
	})
}

// writeDeadliner is what http.ResponseController.SetWriteDeadline
// reaches: the server's writer, or a controller.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

type deadlineWriter struct {
	http.ResponseWriter
	dl     writeDeadliner
	window time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.dl.SetWriteDeadline(time.Now().Add(w.window))
	return w.ResponseWriter.Write(p)
}

// Flush keeps http.Flusher working through the wrapper.
func (w *deadlineWriter) Flush() {
	_ = w.dl.SetWriteDeadline(time.Now().Add(w.window))
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
