package daemon

import (
	"net/http"

	"github.com/switchboard-bridge/switchboard/web"
)

// mountWeb serves the users' web page (web.Prefix) on mux. The page signs
// in at homeserver.address with a password (its origin is added to the
// page's connect-src) or takes a pasted OpenID token, and then uses the
// provisioning API only. An address the page cannot use (config checks it
// at load, so this is not expected) leaves the page on the pasted token.
func (d *Daemon) mountWeb(mux *http.ServeMux) {
	h, err := web.New(web.Options{Homeserver: d.cfg.Homeserver.Address})
	if err != nil {
		d.log.Warn().Err(err).Msg("The web page offers no password sign-in: homeserver.address is not a URL a browser can use")
		if h, err = web.New(web.Options{}); err != nil {
			d.log.Error().Err(err).Msg("The web page is not served")
			return
		}
	}
	mux.Handle(web.Prefix, h)
}
