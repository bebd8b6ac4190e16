package provision

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/identity"
)

// Prefix is where the API is mounted on the listener.
const Prefix = "/_switchboard/provision/v1/"

// Network is one network the bridge runs, for whoami.
type Network struct {
	ID    string
	State string
}

// LoginStatus is one account's WhatsApp login, for whoami.
type LoginStatus struct {
	LoggedIn bool
	State    string
	Detail   string
	Pending  bool
}

// WhatsApp is what the API needs of the WhatsApp connector (the daemon
// adapts *whatsapp.Connector).
type WhatsApp interface {
	// Login starts a login for account (a Matrix user ID, or RelayAccount)
	// with a QR code, or a pairing code when phone is set; later steps
	// follow through reply.
	Login(ctx context.Context, account, phone string, reply func(context.Context, commands.Step)) commands.Step
	LoginStatus(account string) LoginStatus
	RelayAvailable() bool
	// RelayAccount is the account name of the bridge's relay login.
	RelayAccount() string
}

// Options configure a Server.
type Options struct {
	// Commands is the bot's registry; every action runs through it.
	Commands *commands.Registry
	// Level is a Matrix user's permission level (permissions).
	Level func(user string) commands.Level
	// SharedSecret authenticates trusted clients; "" turns that off.
	SharedSecret string
	// HomeserverDomain and HomeserverURL are the bridge's own homeserver:
	// OpenID tokens of its users are checked at HomeserverURL.
	HomeserverDomain string
	HomeserverURL    string
	// OpenIDServer reports whether tokens of users on another server may
	// be checked with that server (the daemon: permissions names it).
	OpenIDServer func(server string) bool
	// HTTPClient asks homeservers (nil: a default client). Redirects are
	// never followed.
	HTTPClient *http.Client
	// Identity holds links and preferences (whoami, preferences).
	Identity *identity.Store
	// WhatsApp is the WhatsApp connector; nil when it is not enabled.
	WhatsApp WhatsApp
	// LoginTimeout is how long a WhatsApp login waits (whatsapp.login_timeout).
	LoginTimeout time.Duration
	// Networks lists the bridge's networks and their health.
	Networks func(ctx context.Context) []Network
	// Suspended reports whether a user is suspended (safety).
	Suspended func(user string) bool
	// PortalOwner returns the user a portal room belongs to ("" when the
	// room is no portal).
	PortalOwner func(ctx context.Context, room string) (string, error)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the provisioning API.
type Server struct {
	opts   Options
	openid *openIDVerifier
	logins *loginTable
	mux    *http.ServeMux
}

// New returns a Server. It does no I/O.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = 3 * time.Minute
	}
	s := &Server{
		opts:   opts,
		openid: newOpenIDVerifier(opts.HTTPClient, opts.HomeserverDomain, opts.HomeserverURL, opts.OpenIDServer, opts.Now),
		logins: newLoginTable(opts.LoginTimeout, opts.Now),
		mux:    http.NewServeMux(),
	}
	s.routes()
	return s
}

// caller is the authenticated user of a request.
type caller struct {
	user  string
	level commands.Level
}

func (c caller) address() bridge.Address {
	return bridge.Address{Network: bridge.NetworkMatrix, ID: c.user}
}

// handlerFunc is an endpoint: it answers, or returns an error answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) *Error

func (s *Server) routes() {
	type route struct {
		method, path string
		h            handlerFunc
	}
	paths := map[string]bool{}
	for _, rt := range []route{
		{http.MethodGet, "whoami", s.whoami},
		{http.MethodPost, "login/whatsapp", s.startLogin},
		{http.MethodGet, "login/whatsapp/{login}", s.pollLogin},
		{http.MethodPost, "logout/whatsapp", s.logout},
		{http.MethodPost, "start", s.start},
		{http.MethodPost, "link", s.link},
		{http.MethodPost, "verify", s.verify},
		{http.MethodPost, "unlink", s.unlink},
		{http.MethodGet, "preferences", s.getPreferences},
		{http.MethodPut, "preferences", s.putPreferences},
		{http.MethodPut, "conversations/{room}/retention", s.retention},
	} {
		s.mux.Handle(rt.method+" "+Prefix+rt.path, s.endpoint(rt.h))
		if !paths[rt.path] {
			paths[rt.path] = true
			s.mux.HandleFunc(Prefix+rt.path, func(w http.ResponseWriter, _ *http.Request) { writeError(w, errNoMethod) })
		}
	}
	s.mux.HandleFunc(Prefix, func(w http.ResponseWriter, _ *http.Request) { writeError(w, errNotFound) })
}

// Handler is the API, to mount at Prefix.
func (s *Server) Handler() http.Handler { return s.mux }

// endpoint authenticates a request, then runs h.
func (s *Server) endpoint(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, e := s.authenticate(r)
		if e == nil && c.level < commands.LevelRelay {
			e = errorf(http.StatusForbidden, CodeForbidden, "You are not allowed to use this bridge.")
		}
		if e == nil {
			log := zerolog.Ctx(r.Context()).With().Str("provision_user", c.user).Logger()
			r = r.WithContext(log.WithContext(r.Context()))
			e = h(w, r, c)
		}
		if e != nil {
			writeError(w, e)
		}
	})
}

// authenticate reads the credentials: the shared secret or an OpenID
// token, and ?user_id=.
func (s *Server) authenticate(r *http.Request) (caller, *Error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return caller{}, errUnauthorized
	}
	user := r.URL.Query().Get("user_id")
	server, valid := serverOf(user)
	if !valid {
		return caller{}, errorf(http.StatusUnauthorized, CodeUnauthorized, "user_id must name a Matrix user, like @alice:example.org")
	}
	if openid, isOpenID := strings.CutPrefix(token, "openid:"); isOpenID {
		if err := s.openid.verify(r.Context(), openid, user, server); err != nil {
			zerolog.Ctx(r.Context()).Info().Err(err).Str("server", server).Msg("Provisioning: OpenID token refused")
			return caller{}, errorf(http.StatusUnauthorized, CodeUnauthorized, openIDRefusal(err))
		}
	} else if !secretMatches(s.opts.SharedSecret, token) {
		return caller{}, errUnauthorized
	}
	return caller{user: user, level: s.opts.Level(user)}, nil
}
