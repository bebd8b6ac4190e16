package daemon

import (
	"context"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/periodic"
)

// identityPurgeInterval is how often expired verification metadata is
// deleted.
const identityPurgeInterval = 10 * time.Minute

// openIdentity opens the identity store (preferences, consents, verified
// links) and the service behind the link commands.
func (d *Daemon) openIdentity(ctx context.Context) error {
	d.ident = identity.New(d.db)
	if err := d.ident.Upgrade(ctx, d.log); err != nil {
		return err
	}
	if err := d.ident.SetSecret([]byte(d.cfg.Identity.Secret)); err != nil {
		return err
	}
	svc, err := identity.NewService(d.ident)
	if err != nil {
		return err
	}
	d.idsvc = svc
	return nil
}

// registerIdentityCommands installs link, verify, unlink, links and prefer,
// and the identity lines of whoami.
func (d *Daemon) registerIdentityCommands(mx *matrix.Connector) error {
	svc := d.idsvc
	handlers := map[string]matrix.CommandFunc{
		"link": func(ctx context.Context, req *matrix.CommandRequest) string {
			return svc.Link(ctx, matrix.UserAddress(req.User), req.Args[0])
		},
		"verify": func(ctx context.Context, req *matrix.CommandRequest) string {
			return svc.Verify(ctx, matrix.UserAddress(req.User), req.Args[0])
		},
		"unlink": func(ctx context.Context, req *matrix.CommandRequest) string {
			return svc.Unlink(ctx, matrix.UserAddress(req.User), req.Args[0])
		},
		"links": func(ctx context.Context, req *matrix.CommandRequest) string {
			return svc.Links(ctx, matrix.UserAddress(req.User))
		},
		"prefer": func(ctx context.Context, req *matrix.CommandRequest) string {
			return svc.Prefer(ctx, matrix.UserAddress(req.User), req.Args[0])
		},
	}
	for name, fn := range handlers {
		if err := mx.SetCommandHandler(name, fn); err != nil {
			return err
		}
	}
	mx.AddWhoami(func(ctx context.Context, user id.UserID) []string {
		lines, err := svc.Summary(ctx, matrix.UserAddress(user))
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to read links for whoami")
			return []string{"Linked addresses: (could not be read right now)"}
		}
		return lines
	})
	return nil
}

// purgeIdentity deletes verification metadata older than the rate-limit
// window, until ctx ends.
func (d *Daemon) purgeIdentity(ctx context.Context) {
	periodic.Run(ctx, identityPurgeInterval, func(ctx context.Context) {
		if err := d.idsvc.Verifier().Purge(ctx); err != nil {
			d.log.Warn().Err(err).Msg("Failed to purge verification metadata")
		}
	})
}
