package daemon

import (
	"context"
	"time"

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

// purgeIdentity deletes verification metadata older than the rate-limit
// window, until ctx ends.
func (d *Daemon) purgeIdentity(ctx context.Context) {
	periodic.Run(ctx, identityPurgeInterval, func(ctx context.Context) {
		if err := d.idsvc.Verifier().Purge(ctx); err != nil {
			d.log.Warn().Err(err).Msg("Failed to purge verification metadata")
		}
	})
}
