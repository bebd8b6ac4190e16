package matrix

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

// Double puppeting: a Matrix user of the bridge's own homeserver who turned
// it on (`double-puppet on`) and writes from another network's app
// (WhatsApp on their phone) appears in their portals as their own Matrix
// account instead of a "You (from WhatsApp)" ghost. The bot sends as them
// with the appservice's token (?user_id=), which appservice.double_puppet
// allows through a non-exclusive namespace for the domain's users in the
// registration. Nothing is ever read as them: no /sync, no fetching; only
// sends into portals they are in (or invited to). In encrypted portals the
// bot's Olm machine encrypts, as for the ghosts. Events sent this way carry
// fi.mau.double_puppet_source (appservice.DoublePuppetKey) so their echo is
// not bridged back.

const (
	puppetGetQuery    = `SELECT 1 FROM sb_matrix_double_puppet WHERE user_id=$1`
	puppetInsertQuery = `INSERT INTO sb_matrix_double_puppet (user_id, enabled_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`
	puppetDeleteQuery = `DELETE FROM sb_matrix_double_puppet WHERE user_id=$1`
)

// puppetCacheTTL bounds how long an opt-in answer is reused.
const puppetCacheTTL = time.Minute

// puppets caches opt-ins and the intents used with them.
type puppets struct {
	mu      sync.Mutex
	intents map[id.UserID]*appservice.IntentAPI
	optIn   map[id.UserID]puppetAnswer
}

type puppetAnswer struct {
	on bool
	at time.Time
}

// DoublePuppetAvailable reports whether user may turn double puppeting on:
// the config allows it and user is on the bridge's homeserver.
func (c *Connector) DoublePuppetAvailable(user id.UserID) bool {
	_, server, err := user.Parse()
	return err == nil && c.cfg.Appservice.DoublePuppet && server == c.cfg.Homeserver.Domain &&
		user != c.bot && !c.IsGhost(user)
}

// DoublePuppetEnabled reports whether user turned double puppeting on.
func (c *Connector) DoublePuppetEnabled(ctx context.Context, user id.UserID) (bool, error) {
	now := time.Now()
	c.puppets.mu.Lock()
	if a, ok := c.puppets.optIn[user]; ok && now.Sub(a.at) < puppetCacheTTL {
		c.puppets.mu.Unlock()
		return a.on, nil
	}
	c.puppets.mu.Unlock()
	on, err := c.exists(ctx, puppetGetQuery, user)
	if err != nil {
		return false, err
	}
	c.rememberOptIn(user, on)
	return on, nil
}

func (c *Connector) rememberOptIn(user id.UserID, on bool) {
	c.puppets.mu.Lock()
	if c.puppets.optIn == nil {
		c.puppets.optIn = make(map[id.UserID]puppetAnswer)
	}
	c.puppets.optIn[user] = puppetAnswer{on: on, at: time.Now()}
	c.puppets.mu.Unlock()
}

// SetDoublePuppet turns double puppeting on or off for user.
func (c *Connector) SetDoublePuppet(ctx context.Context, user id.UserID, on bool) error {
	var err error
	if on {
		err = c.exec(ctx, puppetInsertQuery, user, ms(time.Now()))
	} else {
		err = c.exec(ctx, puppetDeleteQuery, user)
	}
	if err == nil {
		c.rememberOptIn(user, on)
	}
	return err
}

// puppetIntent returns the intent that sends a delivery as its sender's own
// Matrix account, or nil when the delivery is not the leg owner's own
// message, double puppeting is off for them, or they are not (and cannot
// become, from an invite) a member of room: the ghost sends then.
func (c *Connector) puppetIntent(ctx context.Context, room id.RoomID, sender bridge.Sender) *appservice.IntentAPI {
	user := id.UserID(sender.Self)
	if user == "" || !c.DoublePuppetAvailable(user) {
		return nil
	}
	log := zerolog.Ctx(ctx)
	if on, err := c.DoublePuppetEnabled(ctx, user); err != nil {
		log.Warn().Err(err).Msg("Could not read a double puppeting opt-in; sending as the ghost")
		return nil
	} else if !on {
		return nil
	}
	c.puppets.mu.Lock()
	intent := c.puppets.intents[user]
	if intent == nil {
		localpart, _, _ := user.Parse()
		intent = c.as.NewIntentAPI(localpart)
		// A custom puppet: never registered, never force-invited, and
		// its events carry the double puppet marker.
		intent.IsCustomPuppet = true
		if c.puppets.intents == nil {
			c.puppets.intents = make(map[id.UserID]*appservice.IntentAPI)
		}
		c.puppets.intents[user] = intent
	}
	c.puppets.mu.Unlock()
	if !c.as.StateStore.IsInRoom(ctx, room, user) {
		// Joining works when they are in the room or invited to it (their
		// own portal); one who left is not brought back.
		if _, err := intent.JoinRoomByID(ctx, room); err != nil {
			log.Debug().Err(err).Msg("Double puppet is not in the portal; sending as the ghost")
			return nil
		}
		_ = c.as.StateStore.SetMembership(ctx, room, user, event.MembershipJoin)
	}
	return intent
}

// isPuppetEcho reports whether evt was sent by this bridge as a double
// puppet (its content carries the marker), so it is not bridged back.
func (c *Connector) isPuppetEcho(evt *event.Event) bool {
	if c.as.DoublePuppetValue == "" {
		return false
	}
	if evt.Content.Raw != nil {
		v, _ := evt.Content.Raw[appservice.DoublePuppetKey].(string)
		return v == c.as.DoublePuppetValue
	}
	if len(evt.Content.VeryRaw) == 0 {
		return false
	}
	var peek map[string]json.RawMessage
	if json.Unmarshal(evt.Content.VeryRaw, &peek) != nil {
		return false
	}
	var v string
	_ = json.Unmarshal(peek[appservice.DoublePuppetKey], &v)
	return v == c.as.DoublePuppetValue
}

// DoublePuppetCommand is the `double-puppet [on|off]` bot command: without
// an argument it says whether double puppeting is on.
func DoublePuppetCommand(c *Connector) commands.Command {
	return commands.Command{
		Name:  "double-puppet",
		Usage: "double-puppet [on|off]",
		Help: "show what you send from your phone's WhatsApp as your own Matrix account instead of a " +
			"'You (from WhatsApp)' ghost (the bridge only ever sends as you, never reads)",
		Level: commands.LevelUser,
		Args:  commands.MaxArgs(1),
		Run: func(ctx context.Context, req *commands.Request) string {
			if req.User.Network != bridge.NetworkMatrix {
				return "Double puppeting is for Matrix accounts."
			}
			user := id.UserID(req.User.ID)
			if !c.DoublePuppetAvailable(user) {
				if !c.cfg.Appservice.DoublePuppet {
					return "Double puppeting is not enabled on this bridge (the admin sets appservice.double_puppet)."
				}
				return "Double puppeting works only for accounts on " + c.cfg.Homeserver.Domain + "."
			}
			if len(req.Args) == 0 {
				on, err := c.DoublePuppetEnabled(ctx, user)
				if err != nil {
					return "Could not read your setting; try again."
				}
				if on {
					return "Double puppeting is on: what you send from your own WhatsApp appears as your Matrix account. Send `double-puppet off` to turn it off."
				}
				return "Double puppeting is off: what you send from your own WhatsApp appears as a 'You (from WhatsApp)' ghost. Send `double-puppet on` to turn it on."
			}
			var on bool
			switch req.Args[0] {
			case "on":
				on = true
			case "off":
			default:
				return "Usage: double-puppet [on|off]"
			}
			if err := c.SetDoublePuppet(ctx, user, on); err != nil {
				return "Could not save your setting; try again."
			}
			if on {
				return "Double puppeting is on: from now on, what you send from your own WhatsApp appears in your portals as your Matrix account. The bridge only ever sends as you; it never reads as you."
			}
			return "Double puppeting is off: what you send from your own WhatsApp appears as a 'You (from WhatsApp)' ghost again."
		},
	}
}
