package daemon

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/provision"
)

// registerProvisioning mounts the provisioning API (provision.Prefix) on
// the listener, answering from the bot's registry and the owners' data.
func (d *Daemon) registerProvisioning(mx *matrix.Connector, wa *whatsapp.Connector) {
	cfg := d.cfg
	secret := ""
	if cfg.Provisioning.SecretEnabled() {
		secret = cfg.Provisioning.SharedSecret
	}
	opts := provision.Options{
		Commands:         d.cmds,
		Level:            func(user string) commands.Level { return commands.LevelOf(cfg.PermissionLevel(user)) },
		SharedSecret:     secret,
		HomeserverDomain: cfg.Homeserver.Domain,
		HomeserverURL:    cfg.Homeserver.Address,
		OpenIDServer:     func(server string) bool { return permissionsName(cfg.Permissions, server) },
		Identity:         d.ident,
		LoginTimeout:     cfg.WhatsApp.LoginTimeout.Std(),
		Networks:         d.provisionNetworks,
		Suspended:        d.safety.IsSuspended,
		PortalOwner: func(ctx context.Context, room string) (string, error) {
			owner, err := mx.PortalOwner(ctx, id.RoomID(room))
			return string(owner), err
		},
	}
	if wa != nil {
		opts.WhatsApp = provisionWhatsApp{wa}
	}
	d.routes[provision.Prefix] = provision.New(opts).Handler()
}

// permissionsName reports whether the permissions name server explicitly:
// a key that is the server name, or a user ID on it. "*" does not count:
// the provisioning API asks only those servers to confirm OpenID tokens.
func permissionsName(perms map[string]string, server string) bool {
	for key := range perms {
		if strings.EqualFold(key, server) {
			return true
		}
		if strings.HasPrefix(key, "@") {
			if _, s, ok := strings.Cut(key, ":"); ok && strings.EqualFold(s, server) {
				return true
			}
		}
	}
	return false
}

// provisionNetworks lists the registered networks and their health.
func (d *Daemon) provisionNetworks(ctx context.Context) []provision.Network {
	var out []provision.Network
	for _, c := range d.router.Connectors() {
		state := string(bridge.HealthOK)
		if hr, ok := c.(bridge.HealthReporter); ok {
			state = string(hr.Health(ctx).State)
		}
		out = append(out, provision.Network{ID: string(c.Network()), State: state})
	}
	return out
}

// provisionWhatsApp adapts the WhatsApp connector to provision.WhatsApp.
type provisionWhatsApp struct{ c *whatsapp.Connector }

func (p provisionWhatsApp) Login(ctx context.Context, account, phone string, reply func(context.Context, commands.Step)) commands.Step {
	return p.c.Login(ctx, account, phone, reply)
}

func (p provisionWhatsApp) LoginStatus(account string) provision.LoginStatus {
	st := p.c.LoginStatus(account)
	return provision.LoginStatus{LoggedIn: st.LoggedIn, State: st.State, Detail: st.Detail, Pending: st.Pending}
}

func (p provisionWhatsApp) RelayAvailable() bool { return p.c.RelayAvailable() }

func (p provisionWhatsApp) RelayAccount() string { return whatsapp.RelayAccount }

var _ provision.WhatsApp = provisionWhatsApp{}
