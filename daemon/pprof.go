package daemon

import (
	"net/http"
	"net/http/pprof"
)

// pprofRoutes adds Go's profiler under /debug/pprof/ to mux when
// appservice.pprof is on: only for callers that carry the as_token or the
// hs_token as Bearer (see authorized), others get 401. A CPU profile's
// seconds must stay below the listener's write timeout.
func (d *Daemon) pprofRoutes(mux *http.ServeMux) {
	if !d.cfg.Appservice.Pprof {
		return
	}
	guard := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !d.authorized(r) {
				w.Header().Set("WWW-Authenticate", "Bearer")
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		})
	}
	mux.Handle("GET /debug/pprof/", guard(pprof.Index))
	mux.Handle("GET /debug/pprof/cmdline", guard(pprof.Cmdline))
	mux.Handle("GET /debug/pprof/profile", guard(pprof.Profile))
	mux.Handle("GET /debug/pprof/symbol", guard(pprof.Symbol))
	mux.Handle("GET /debug/pprof/trace", guard(pprof.Trace))
}
