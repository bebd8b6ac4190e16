package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// HealthReport is the JSON body of GET /health.
type HealthReport struct {
	Status     string                   `json:"status"`
	Version    string                   `json:"version"`
	Database   bridge.Health            `json:"database"`
	Homeserver bridge.Health            `json:"homeserver"`
	Connectors map[string]bridge.Health `json:"connectors"`
	QueueDepth int                      `json:"queue_depth"`
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
		rep.QueueDepth = n
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

func (d *Daemon) handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d.health(r.Context()))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	for pattern, h := range d.routes {
		mux.Handle(pattern, h)
	}
	return recoverer(d.log, mux)
}

// recoverer turns a panicking handler into a 500 that is logged; the server
// keeps running.
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
		next.ServeHTTP(w, r.WithContext(log.WithContext(r.Context())))
	})
}
