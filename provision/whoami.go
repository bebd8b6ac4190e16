package provision

import (
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// WhoamiResponse is the answer of GET whoami.
type WhoamiResponse struct {
	UserID      string          `json:"user_id"`
	Permission  string          `json:"permission"`
	Suspended   bool            `json:"suspended"`
	Networks    []NetworkInfo   `json:"networks"`
	Links       []LinkInfo      `json:"links"`
	Preferences PreferencesInfo `json:"preferences"`
}

// NetworkInfo is one network in whoami.
type NetworkInfo struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// WhatsApp only:
	Login           *LoginInfo `json:"login,omitempty"`
	LoginInProgress *bool      `json:"login_in_progress,omitempty"`
	RelayAvailable  *bool      `json:"relay_available,omitempty"`
	LoginFlows      []string   `json:"login_flows,omitempty"`
}

// LoginInfo is the user's login on a network.
type LoginInfo struct {
	State  string `json:"state"`
	Detail string `json:"detail"`
}

// LinkInfo is one linked number, masked unless the user revealed it.
type LinkInfo struct {
	Number     string    `json:"number"`
	VerifiedAt time.Time `json:"verified_at"`
}

// PreferencesInfo are the user's settings.
type PreferencesInfo struct {
	SMS    bool   `json:"sms"`
	Reveal bool   `json:"reveal"`
	Prefer string `json:"prefer"`
}

// Login flows of WhatsApp.
const (
	FlowQR          = "qr"
	FlowPairingCode = "pairing_code"
)

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, c caller) *Error {
	ctx := r.Context()
	if _, e := s.check(ctx, c, "whoami"); e != nil {
		return e
	}
	resp := WhoamiResponse{UserID: c.user, Permission: c.level.String(), Networks: []NetworkInfo{}, Links: []LinkInfo{}}
	if s.opts.Suspended != nil {
		resp.Suspended = s.opts.Suspended(c.user)
	}
	var nets []Network
	if s.opts.Networks != nil {
		nets = s.opts.Networks(ctx)
	}
	for _, n := range nets {
		info := NetworkInfo{ID: n.ID, State: n.State}
		if n.ID == string(bridge.NetworkWhatsApp) && s.opts.WhatsApp != nil {
			st := s.opts.WhatsApp.LoginStatus(c.user)
			if st.LoggedIn {
				info.Login = &LoginInfo{State: st.State, Detail: phone.Redact(st.Detail)}
			}
			pending, relay := st.Pending, s.opts.WhatsApp.RelayAvailable()
			info.LoginInProgress, info.RelayAvailable = &pending, &relay
			info.LoginFlows = []string{FlowQR, FlowPairingCode}
		}
		resp.Networks = append(resp.Networks, info)
	}
	prefs, links, e := s.prefsAndLinks(r, c)
	if e != nil {
		return e
	}
	resp.Preferences, resp.Links = prefs, links
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// prefsAndLinks reads the user's preferences and linked numbers (masked
// unless the user turned reveal on).
func (s *Server) prefsAndLinks(r *http.Request, c caller) (PreferencesInfo, []LinkInfo, *Error) {
	ctx := r.Context()
	links := []LinkInfo{}
	store := s.opts.Identity
	if store == nil {
		return PreferencesInfo{}, links, nil
	}
	p, err := store.Prefs(ctx, c.address())
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Provisioning: could not read preferences")
		return PreferencesInfo{}, nil, errInternal
	}
	prefs := PreferencesInfo{SMS: p.SMS, Reveal: p.Reveal, Prefer: string(p.Prefer)}
	if store.Vault() == nil {
		return prefs, links, nil
	}
	ls, err := store.Links(ctx, c.address())
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Provisioning: could not read links")
		return PreferencesInfo{}, nil, errInternal
	}
	for _, l := range ls {
		links = append(links, LinkInfo{Number: shownNumber(l, p), VerifiedAt: l.At.UTC()})
	}
	return prefs, links, nil
}

// shownNumber is a linked number as its owner's answer may show it.
func shownNumber(l identity.Link, p identity.Prefs) string {
	if p.Reveal {
		return l.Number
	}
	return phone.Mask(l.Number)
}
