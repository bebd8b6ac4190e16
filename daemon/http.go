package daemon

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// HealthReport is the JSON body of GET /health for an authenticated
// caller (see authorized). Others get the same shape with states only: no
// version, no queue depth, no messages (they can hold internal URLs and
// error text).
type HealthReport struct {
	Status     string                   `json:"status"`
	Version    string                   `json:"version,omitempty"`
	Database   bridge.Health            `json:"database"`
	Homeserver bridge.Health            `json:"homeserver"`
	Connectors map[string]bridge.Health `json:"connectors"`
	QueueDepth *int                     `json:"queue_depth,omitempty"`
}

// healthState holds states that background checks update.
type healthState struct {
	mu         sync.Mutex
	homeserver bridge.Health
}

func (h *healthState) setHomeserver(s bridge.Health) {
	h.mu.Lock()
	h.homeserver = s
	h.mu.Unlock()
}

func (h *healthState) getHomeserver() bridge.Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.homeserver
}

func (d *Daemon) health(ctx context.Context) HealthReport {
	rep := HealthReport{
		Status:     "ok",
		Version:    d.version,
		Database:   bridge.Health{State: bridge.HealthOK},
		Homeserver: d.state.getHomeserver(),
		Connectors: map[string]bridge.Health{},
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if n, err := d.router.QueueDepth(ctx); err != nil {
		rep.Database = bridge.Health{State: bridge.HealthDown, Message: "database query failed"}
	} else {
		rep.QueueDepth = &n
	}
	for _, c := range d.router.Connectors() {
		h := bridge.Health{State: bridge.HealthOK}
		if hr, ok := c.(bridge.HealthReporter); ok {
			h = hr.Health(ctx)
		}
		rep.Connectors[string(c.Network())] = h
	}
	if rep.Database.State != bridge.HealthOK {
		rep.Status = "down"
	} else if rep.Homeserver.State != bridge.HealthOK {
		rep.Status = "degraded"
	}
	for _, h := range rep.Connectors {
		if h.State != bridge.HealthOK && rep.Status == "ok" {
			rep.Status = "degraded"
		}
	}
	return rep
}

// public strips what only an authenticated caller may see.
func (rep HealthReport) public() HealthReport {
	strip := func(h bridge.Health) bridge.Health { return bridge.Health{State: h.State} }
	out := HealthReport{Status: rep.Status, Database: strip(rep.Database), Homeserver: strip(rep.Homeserver),
		Connectors: make(map[string]bridge.Health, len(rep.Connectors))}
	for name, h := range rep.Connectors {
		out.Connectors[name] = strip(h)
	}
	return out
}

// authorized reports whether r carries "Authorization: Bearer <token>"
// with the as_token or the hs_token: whoever holds either may see the
// details of /health.
func (d *Daemon) authorized(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return false
	}
	as := subtle.ConstantTimeCompare([]byte(token), []byte(d.cfg.Appservice.ASToken))
	hs := subtle.ConstantTimeCompare([]byte(token), []byte(d.cfg.Appservice.HSToken))
	return as|hs == 1
}

func (d *Daemon) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		rep := d.health(r.Context())
		if !d.authorized(r) {
			rep = rep.public()
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(rep)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	d.mountWeb(mux)
	d.pprofRoutes(mux)
	for pattern, h := range d.routes {
		mux.Handle(pattern, h)
	}
	return recoverer(d.log, mux)
}

// recoverer turns a panicking handler into a 500 that is logged; the server
// keeps running. Requests carry log in their context: the listener's base
// context has it already (Run), so it is added only to a request that
// arrives without a logger, not copied into every request's context.
func recoverer(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error().Any("panic", p).Bytes("stack", debug.Stack()).Str("path", r.URL.Path).Msg("Recovered panic in HTTP handler")
				http.Error(w, `{"errcode":"M_UNKNOWN","error":"internal error"}`, http.StatusInternalServerError)
			}
		}()
		if l := zerolog.Ctx(r.Context()); l == zerolog.DefaultContextLogger || l.GetLevel() == zerolog.Disabled {
			r = r.WithContext(log.WithContext(r.Context()))
		}
		next.ServeHTTP(w, r)
	})
}
