package daemon

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
)

// whatsAppConfig is what the WhatsApp connector reads of the loaded
// configuration.
func whatsAppConfig(cfg *config.Config) whatsapp.Config {
	return whatsapp.Config{
		WhatsApp:          cfg.WhatsApp,
		Secret:            cfg.Identity.Secret,
		MetadataRetention: cfg.Retention.Metadata.Std(),
		AdminRoom:         id.RoomID(cfg.Safety.AdminRoom),
	}
}

// registerWhatsApp sets up the WhatsApp connector: its Matrix side (QR
// images, notices), the hooks that turn WhatsApp chats into portals and
// chat timers into leg timers (its commands are registered by
// registerCommands).
func (d *Daemon) registerWhatsApp(mx *matrix.Connector, reg prometheus.Registerer) (*whatsapp.Connector, error) {
	wa, err := whatsapp.New(whatsAppConfig(d.cfg), d.db, d.log, whatsapp.Options{})
	if err != nil {
		return nil, err
	}
	if err = wa.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	wa.SetMatrix(mx)
	wa.SetHooks(whatsapp.Hooks{
		OnChatTimer: d.router.SetLegTimer,
		OnUnrouted: func(ctx context.Context, u whatsapp.Unrouted) (bridge.ConversationID, error) {
			return d.whatsAppPortal(ctx, mx, u)
		},
	})
	if err = d.router.Register(wa); err != nil {
		return nil, err
	}
	// Verification codes for `link` go by the relay account when it
	// reaches the number (identity tries WhatsApp before SMS).
	d.idsvc.AddCodeSender(wa.CodeSender())
	return wa, nil
}

// whatsAppPortal gives a WhatsApp chat that received a message a portal
// for the Matrix user whose login received it. The relay account's chats
// are opened by `start` only: a stranger writing to the relay number has
// no Matrix user to go to (whatsapp.ErrNoRecipient: the contact gets an
// automatic reply, the admins a flag, and nothing is kept).
func (d *Daemon) whatsAppPortal(ctx context.Context, mx *matrix.Connector, u whatsapp.Unrouted) (bridge.ConversationID, error) {
	if u.Account == whatsapp.RelayAccount {
		if d.safety != nil {
			d.safety.FlagAdmins(ctx, "relay-unrouted:"+string(u.Contact.ID), fmt.Sprintf(
				"A WhatsApp contact (%s) wrote to the relay account, but no user has a chat with them, so their messages "+
					"are not delivered (nothing of them is kept; the contact got an automatic reply saying so). Told once an hour per contact.", u.Contact.DisplayName))
		}
		return "", fmt.Errorf("%w: the relay account only carries chats opened from Matrix", whatsapp.ErrNoRecipient)
	}
	room, err := mx.CreatePortal(ctx, matrix.PortalOptions{
		User: id.UserID(u.Account), Network: bridge.NetworkWhatsApp, Contact: u.Contact, Direct: !u.Group, Name: u.Name,
	})
	if err != nil {
		return "", fmt.Errorf("create portal: %w", err)
	}
	conv := bridge.NewConversationID()
	err = d.router.CreateConversationWithID(ctx, conv,
		bridge.Leg{Network: bridge.NetworkMatrix, Chat: room}, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: u.Chat})
	return conv, err
}
