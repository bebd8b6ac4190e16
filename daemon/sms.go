package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
)

// registerSMS sets up the Twilio SMS connector: its webhooks, metrics, and
// the hooks that turn carrier reports into what Matrix users see.
func (d *Daemon) registerSMS(mx *matrix.Connector, reg prometheus.Registerer) error {
	c, err := sms.New(smsConfig(d.cfg), d.db, d.log)
	if err != nil {
		return err
	}
	if err = c.RegisterMetrics(reg); err != nil {
		return err
	}
	c.SetHooks(sms.Hooks{
		OnStatus: func(ctx context.Context, conv bridge.ConversationID, msg bridge.MessageID, state, code string) {
			if state != string(sms.StatusFailed) {
				return
			}
			leg, ok := d.legOn(ctx, conv, bridge.NetworkSMS)
			if !ok {
				return
			}
			cause := fmt.Errorf("the carrier could not deliver the SMS (Twilio error %s)", code)
			if err := d.router.ReportStatus(ctx, msg, leg, bridge.StateFailed, cause); err != nil {
				d.log.Warn().Err(err).Str("conversation", string(conv)).Msg("Could not report a failed SMS to its sender")
			}
		},
		OnPoolShared: func(ctx context.Context, conv bridge.ConversationID, others []bridge.ConversationID) {
			for _, other := range others {
				if leg, ok := d.legOn(ctx, other, bridge.NetworkMatrix); ok {
					mx.Notify(ctx, leg.Chat, "The bridge has no free SMS number left for this contact, so another "+
						"conversation now shares this chat's number. The contact's replies go to whichever of the "+
						"two sent last; send a message here to have their next reply come back to this room.")
				}
			}
		},
		IsGroup: func(ctx context.Context, conv bridge.ConversationID) bool {
			legs, err := d.router.Legs(ctx, conv)
			return err == nil && len(legs) > 2
		},
		OnStranger: func(ctx context.Context, contact bridge.Sender, pool string) {
			if d.safety == nil {
				return
			}
			d.safety.FlagAdmins(ctx, "sms-unrouted:"+string(contact.ID)+":"+pool, fmt.Sprintf(
				"An SMS contact (%s) texted one of the bridge's SMS numbers, but no conversation uses that number with them, so "+
					"their messages are not delivered (nothing of them is kept; the contact got an automatic reply saying so, "+
					"at most hourly). Told once an hour per contact and number.", contact.DisplayName))
		},
	})
	if path := smsSpoolPath(d.cfg); path != "" {
		c.SetSpool(path)
	}
	if err = d.router.Register(c); err != nil {
		return err
	}
	d.idsvc.AddCodeSender(c)
	for pattern, h := range c.Routes() {
		d.routes[pattern] = h
	}
	return nil
}

// smsConfig is what the SMS connector reads of the loaded configuration.
func smsConfig(cfg *config.Config) sms.Config {
	intervals := make(map[string]time.Duration, len(cfg.Safety.SMSNumberIntervals))
	for number, d := range cfg.Safety.SMSNumberIntervals {
		intervals[number] = d.Std()
	}
	return sms.Config{
		SMS:               cfg.SMS,
		Secret:            cfg.Identity.Secret,
		MetadataRetention: cfg.Retention.Metadata.Std(),
		Pacing: sms.Pacing{
			SegmentInterval: cfg.Safety.SMSSegmentInterval.Std(),
			NumberIntervals: intervals,
		},
		HighCostPrefixes: cfg.Safety.HighCostPrefixes,
	}
}

// smsSpoolPath is where inbound SMS wait while the database is
// unavailable: next to the SQLite database, else next to the config file.
func smsSpoolPath(cfg *config.Config) string {
	if cfg.Database.Type == config.DatabaseSQLite {
		file, _, _ := strings.Cut(strings.TrimPrefix(cfg.Database.URI, "file:"), "?")
		if filepath.IsAbs(file) {
			return filepath.Join(filepath.Dir(file), "sms-spool")
		}
	}
	if cfg.Path() != "" {
		return filepath.Join(filepath.Dir(cfg.Path()), "sms-spool")
	}
	return ""
}

// legOn returns a conversation's first leg on a network.
func (d *Daemon) legOn(ctx context.Context, conv bridge.ConversationID, network bridge.NetworkID) (bridge.Leg, bool) {
	legs, err := d.router.Legs(ctx, conv)
	if err != nil {
		d.log.Warn().Err(err).Str("conversation", string(conv)).Msg("Could not list legs")
		return bridge.Leg{}, false
	}
	for _, l := range legs {
		if l.Network == network {
			return l, true
		}
	}
	return bridge.Leg{}, false
}
