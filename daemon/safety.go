package daemon

import (
	"context"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
	"github.com/switchboard-bridge/switchboard/safety"
)

// registerSafety starts the safety service (limits, blocks, reports, abuse
// signals) and wires it into the router (admission), the Matrix connector
// (new-chat gate, block/report/admin commands, whoami) and the SMS
// connector (high-cost destinations). Call after the connectors are
// registered and before the router starts.
func (d *Daemon) registerSafety(ctx context.Context, mx *matrix.Connector, reg prometheus.Registerer) error {
	var smsConn *sms.Connector
	if c, ok := d.router.Connector(bridge.NetworkSMS); ok {
		smsConn, _ = c.(*sms.Connector)
	}
	opts := safety.Options{
		DB:                d.db,
		Config:            d.cfg.Safety,
		MetadataRetention: d.cfg.Retention.Metadata.Std(),
		Admins:            adminUsers(d.cfg),
		Log:               d.log,
		Registerer:        reg,
		People:            d.ident.PersonKey,
		Aliases:           d.ident.PersonKeys,
		LegOwner: func(ctx context.Context, leg bridge.Leg) (string, error) {
			if leg.Network != bridge.NetworkMatrix {
				return "", nil
			}
			owner, err := mx.PortalOwner(ctx, id.RoomID(leg.Chat))
			return string(owner), err
		},
		Legs: func(ctx context.Context, leg bridge.Leg) (bridge.ConversationID, []bridge.Leg, error) {
			conv, err := d.router.ConversationOf(ctx, leg)
			if err != nil {
				return "", nil, err
			}
			legs, err := d.router.Legs(ctx, conv)
			return conv, legs, err
		},
		History: func(ctx context.Context, room string, n int) ([]safety.HistoryMessage, error) {
			msgs, err := mx.RecentContactMessages(ctx, id.RoomID(room), n)
			out := make([]safety.HistoryMessage, len(msgs))
			for i, m := range msgs {
				out[i] = safety.HistoryMessage{At: m.At, Body: m.Body}
			}
			return out, err
		},
		Notifier: matrixNotifier{mx},
	}
	if smsConn != nil {
		opts.Contact = func(ctx context.Context, leg bridge.Leg) (bridge.Sender, bool, error) {
			if leg.Network != bridge.NetworkSMS {
				return bridge.Sender{}, false, nil
			}
			return smsConn.ContactOf(ctx, leg.Chat)
		}
	}
	svc, err := safety.New(opts)
	if err != nil {
		return err
	}
	if err = svc.Start(ctx); err != nil {
		return err
	}
	d.safety = svc
	d.router.SetAdmitter(svc)
	// Matrix events set aside after repeated failures reach the admins.
	mx.SetAdminNotifier(svc.FlagAdmins)
	if smsConn != nil {
		h := smsConn.Hooks()
		h.BeforeSend = func(ctx context.Context, info sms.SendInfo) error {
			return svc.CheckSMS(ctx, safety.SMSSend{
				Sender: info.Sender, SenderNetwork: info.SenderNetwork, Conversation: info.Conversation,
				Region: info.Region, HighCost: info.HighCost,
			})
		}
		smsConn.SetHooks(h)
	}
	return nil
}

// adminUsers lists the user IDs with admin permission, for direct notices
// when safety.admin_room is empty.
func adminUsers(cfg *config.Config) []string {
	var out []string
	for k, level := range cfg.Permissions {
		if level == config.PermAdmin && strings.HasPrefix(k, "@") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// matrixNotifier is the safety service's Notifier on the Matrix connector.
type matrixNotifier struct{ mx *matrix.Connector }

func (n matrixNotifier) NotifyRoom(ctx context.Context, room, text string) {
	n.mx.NotifyRoom(ctx, id.RoomID(room), text)
}

func (n matrixNotifier) NotifyUser(ctx context.Context, user, text string) error {
	return n.mx.NotifyUser(ctx, id.UserID(user), text)
}
