package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// serve runs h behind newServer and limitListener with limits l and
// returns the address.
func serve(t *testing.T, h http.Handler, l HTTPLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := newServer(h, l, context.Background())
	go func() { _ = srv.Serve(limitListener(ln, l)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedWithin reports whether the server closes conn (EOF or reset,
// after whatever response it sends) within d.
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func readAll(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// TestListenerCutsTrickledBody: a body trickled a byte every 200ms (it was
// one every 3s, held open indefinitely) is cut off once ReadTimeout
// passes.
func TestListenerCutsTrickledBody(t *testing.T) {
	addr := serve(t, http.HandlerFunc(readAll), HTTPLimits{ReadTimeout: 500 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	require.True(t, closedWithin(conn, 10*time.Second), "a trickled body kept the connection open")
}

// TestListenerClosesIdleKeepAlive: a keep-alive connection with no next
// request is closed after IdleTimeout.
func TestListenerClosesIdleKeepAlive(t *testing.T) {
	addr := serve(t, http.HandlerFunc(readAll), HTTPLimits{IdleTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.False(t, resp.Close, "the connection is kept alive after the response")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = br.ReadByte()
	require.Error(t, err)
	if ne, ok := err.(net.Error); ok {
		require.False(t, ne.Timeout(), "an idle keep-alive stayed open")
	}
}

// TestListenerCapsConnections: beyond MaxConns, a connection waits to be
// served until another closes.
func TestListenerCapsConnections(t *testing.T) {
	addr := serve(t, http.HandlerFunc(readAll), HTTPLimits{MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		held = append(held, c)
	}
	// The two are served (a request on each answers), and stay open.
	for _, c := range held {
		_, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		resp.Body.Close()
	}
	third, err := net.Dial("tcp", addr) // the kernel accepts it; the server does not yet
	require.NoError(t, err)
	defer third.Close()
	_, err = io.WriteString(third, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	_ = third.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = third.Read(make([]byte, 1))
	require.Error(t, err, "a third connection was served beyond the cap of 2")

	require.NoError(t, held[0].Close())
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(third), nil)
	require.NoError(t, err, "the waiting connection is served once another closes")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestListenerLetsStreamsFinish: WriteTimeout cuts a stalled client, not a
// streamed response that keeps moving (media served to Twilio): a
// response taking several WriteTimeouts in all arrives whole.
func TestListenerLetsStreamsFinish(t *testing.T) {
	const chunks = 6
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range chunks {
			time.Sleep(100 * time.Millisecond)
			_, _ = fmt.Fprintf(w, "chunk %d\n", i)
			http.NewResponseController(w).Flush()
		}
	}), HTTPLimits{WriteTimeout: 250 * time.Millisecond})
	resp, err := http.Get("http://" + addr + "/media")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, chunks, strings.Count(string(body), "chunk"))
}

// TestListenerRefusesHugeHeaders: headers beyond MaxHeaderBytes get 431.
func TestListenerRefusesHugeHeaders(t *testing.T) {
	addr := serve(t, http.HandlerFunc(readAll), HTTPLimits{MaxHeaderBytes: 4 << 10})
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/x", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}

// TestListenerCutsStalledReader: a client that stops reading a response
// is cut off once WriteTimeout passes without a write going through.
func TestListenerCutsStalledReader(t *testing.T) {
	failed := make(chan error, 1)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for range 4096 { // 128 MiB: more than any socket buffer holds
			if _, err := w.Write(chunk); err != nil {
				failed <- err
				return
			}
		}
		failed <- nil
	}), HTTPLimits{WriteTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	select {
	case err := <-failed:
		require.Error(t, err, "the whole response went to a client that never read")
	case <-time.After(30 * time.Second):
		t.Fatal("a client that stopped reading held the handler")
	}
}

// TestRecoverer: a panicking handler answers 500 and is logged with the
// path; the server's ErrAbortHandler passes through. Handlers find the
// daemon's logger in their context, whether the request brought one (the
// listener's base context) or not.
func TestRecoverer(t *testing.T) {
	for _, tc := range []struct {
		name      string
		withBase  bool
		panicWith any
		wantCode  int
		wantLog   string
	}{
		{"panic, bare request", false, "boom", http.StatusInternalServerError, "Recovered panic in HTTP handler"},
		{"panic, base context", true, "boom", http.StatusInternalServerError, "Recovered panic in HTTP handler"},
		{"no panic, bare request", false, nil, http.StatusOK, "handled"},
		{"no panic, base context", true, nil, http.StatusOK, "handled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf strings.Builder
			log := zerolog.New(&buf)
			h := recoverer(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.panicWith != nil {
					panic(tc.panicWith)
				}
				zerolog.Ctx(r.Context()).Info().Msg("handled")
			}))
			req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/1", nil)
			if tc.withBase {
				req = req.WithContext(log.WithContext(req.Context()))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.wantCode, rec.Code)
			require.Contains(t, buf.String(), tc.wantLog)
			if tc.panicWith != nil {
				require.Contains(t, buf.String(), `"path":"/_matrix/app/v1/transactions/1"`)
			}
		})
	}
	t.Run("abort passes through", func(t *testing.T) {
		h := recoverer(zerolog.Nop(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
		require.PanicsWithValue(t, http.ErrAbortHandler, func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		})
	})
}
