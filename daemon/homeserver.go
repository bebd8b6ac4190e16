package daemon

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// watchHomeserver checks that the homeserver answers, retrying with backoff
// and a clear log line until it does, then keeps checking now and then so
// /health stays true.
func (d *Daemon) watchHomeserver(ctx context.Context) {
	url := strings.TrimSuffix(d.cfg.Homeserver.Address, "/") + "/_matrix/client/versions"
	client := &http.Client{Timeout: 10 * time.Second}
	wait := time.Second
	wasUp := false
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && resp.StatusCode == http.StatusOK:
			if !wasUp {
				d.log.Info().Str("homeserver", d.cfg.Homeserver.Address).Msg("Homeserver is reachable")
			}
			wasUp, wait = true, time.Minute
			d.state.setHomeserver(bridge.Health{State: bridge.HealthOK})
		default:
			msg := "homeserver did not answer"
			if err == nil {
				msg = "homeserver answered " + resp.Status
			}
			d.state.setHomeserver(bridge.Health{State: bridge.HealthDown, Message: msg})
			if wasUp {
				wait = time.Second
			}
			wasUp = false
			d.log.Warn().Err(err).Str("homeserver", d.cfg.Homeserver.Address).Dur("retry_in", wait).
				Msg("Homeserver not reachable; is it running and is homeserver.address right? Retrying")
			wait = min(wait*2, time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
