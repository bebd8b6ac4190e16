package daemon

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/rs/zerolog"
)

// BenchmarkPutTransaction measures what the daemon's HTTP layer costs one
// appservice transaction: a PUT over a kept-alive loopback connection
// through the public listener (newServer: limits, write deadlines) and
// the recoverer, to a stub that reads the body and answers {} as the
// Matrix connector does. "bare" is net/http alone, for comparison. The
// homeserver sends one transaction at a time, so the requests are
// sequential. allocs/op counts client and server.
func BenchmarkPutTransaction(b *testing.B) {
	body := bytes.Repeat([]byte(`{"type":"m.room.message","content":{"msgtype":"m.text","body":"bench"}},`), 10)
	stub := func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		w.Header()["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("{}\n"))
	}
	log := zerolog.New(io.Discard).Level(zerolog.InfoLevel)
	for _, tc := range []struct {
		name  string
		serve func(ln net.Listener) *http.Server
	}{
		{"bare", func(ln net.Listener) *http.Server {
			srv := &http.Server{Handler: http.HandlerFunc(stub)}
			go func() { _ = srv.Serve(ln) }()
			return srv
		}},
		{"daemon", func(ln net.Listener) *http.Server {
			mux := http.NewServeMux()
			mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnID}", stub)
			srv := newServer(recoverer(log, mux), HTTPLimits{}, log.WithContext(context.Background()))
			go func() { _ = srv.Serve(limitListener(ln, HTTPLimits{})) }()
			return srv
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := tc.serve(ln)
			b.Cleanup(func() { _ = srv.Close() })
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			b.Cleanup(client.CloseIdleConnections)
			url := "http://" + ln.Addr().String() + "/_matrix/app/v1/transactions/"
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for i := 0; b.Loop(); i++ {
				req, err := http.NewRequest(http.MethodPut, url+"t", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer token")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
