package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// RetentionRequest is a `retention` command in a portal room.
type RetentionRequest struct {
	User id.UserID
	Room id.RoomID
	// Arg is the command's argument: a duration, "off" or "default".
	Arg string
}

// RetentionFunc applies a `retention` command and returns the answer.
type RetentionFunc func(ctx context.Context, req RetentionRequest) (string, error)

var retentionPattern = regexp.MustCompile(`^([0-9]+[smhd]|off|default)$`)

// RetentionCommand is `retention …`, registered by the daemon with the
// router's retention (NewRouterRetention): it sets the disappearing timer
// of the conversation of the portal it is sent in.
func RetentionCommand(fn RetentionFunc) commands.Command {
	return commands.Command{
		Name: "retention", Usage: "retention 30s|10m|24h|7d|30d|365d|off|default", Help: "set this conversation's disappearing timer",
		Level: commands.LevelUser, Args: commands.OneMatching(retentionPattern),
		Run: func(ctx context.Context, req *commands.Request) string {
			answer, err := fn(ctx, RetentionRequest{User: id.UserID(req.User.ID), Room: id.RoomID(req.Room), Arg: req.Args[0]})
			if err != nil {
				return "Could not change retention: " + phone.Redact(err.Error())
			}
			return answer
		},
	}
}

// ErrNotAPortal means a command that acts on a conversation was sent outside one.
var ErrNotAPortal = errors.New("this command works in a bridged room; send it there with the `!sb ` prefix")

// NewRouterRetention returns the RetentionFunc that sets the conversation's
// timer through the router and answers with the effective (strictest)
// policy, what imposed it, and which legs cannot delete.
func NewRouterRetention(r *bridge.Router) RetentionFunc {
	return func(ctx context.Context, req RetentionRequest) (string, error) {
		conv, err := r.ConversationOf(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(req.Room)})
		if errors.Is(err, bridge.ErrUnknownLeg) {
			return "", ErrNotAPortal
		} else if err != nil {
			return "", err
		}
		switch arg := strings.ToLower(req.Arg); arg {
		case "off":
			err = r.SetConversationRetention(ctx, conv, 0, true)
		case "default":
			err = r.SetConversationRetention(ctx, conv, 0, false)
		default:
			d, perr := config.ParseDuration(arg)
			if perr != nil || d.Std() <= 0 {
				return "", fmt.Errorf("%q is not a duration like 30s, 10m, 24h or 7d", req.Arg)
			}
			err = r.SetConversationRetention(ctx, conv, d.Std(), false)
		}
		if err != nil {
			return "", err
		}
		eff, err := r.ConversationRetention(ctx, conv)
		if err != nil {
			return "", err
		}
		// Show the new timer on every leg that can: Matrix room state, the
		// WhatsApp chat timer. A leg that fails is named, not hidden.
		legs, err := r.Legs(ctx, conv)
		if err != nil {
			return "", err
		}
		var notSet []string
		for _, l := range legs {
			conn, ok := r.Connector(l.Network)
			if !ok {
				continue
			}
			if ts, ok := conn.(bridge.TimerSetter); ok {
				if err := ts.SetDisappearingTimer(ctx, l.Chat, eff.Keep); err != nil {
					zerolog.Ctx(ctx).Warn().Err(err).Str("network", string(l.Network)).Msg("Could not set the chat timer")
					notSet = append(notSet, string(l.Network))
				}
			}
		}
		answer := "Messages in this conversation are now kept for " + eff.String() + "."
		if eff.Keep == 0 {
			answer = "Messages in this conversation are now kept until deleted (retention off)."
		}
		undeletable, err := r.UndeletableLegs(ctx, conv)
		if err != nil {
			return "", err
		}
		if len(undeletable) > 0 && eff.Keep > 0 {
			var nets []string
			for _, l := range undeletable {
				nets = append(nets, string(l.Network))
			}
			answer += " Note: " + strings.Join(nets, ", ") + " cannot delete messages already delivered there; " +
				"copies on those networks stay on the recipient's device."
		}
		if len(notSet) > 0 {
			answer += " The timer could not be shown on " + strings.Join(notSet, ", ") + "; messages still expire on time."
		}
		return answer, nil
	}
}

var _ bridge.MessageExpirer = (*Connector)(nil)

// ExpireMessage implements bridge.MessageExpirer: when a message's
// retention ends, the bot (which holds power level 100 in every portal it
// creates) redacts it, whoever sent it.
func (c *Connector) ExpireMessage(ctx context.Context, chat bridge.ChatID, message bridge.RemoteID) error {
	ctx = c.mctx(ctx)
	room, err := roomID(chat)
	if err != nil {
		return err
	}
	target, err := eventID(message)
	if err != nil {
		return err
	}
	_, err = c.as.BotIntent().RedactEvent(ctx, room, target, mautrix.ReqRedact{Reason: "disappearing message: its retention period ended"})
	return classify("redact expired message", err)
}

var _ bridge.TimerSetter = (*Connector)(nil)

// SetDisappearingTimer implements bridge.TimerSetter: the bot sets the
// portal's com.beeper.disappearing_timer room state (read by mautrix-based
// clients); 0 clears it.
func (c *Connector) SetDisappearingTimer(ctx context.Context, chat bridge.ChatID, timer time.Duration) error {
	ctx = c.mctx(ctx)
	room, err := roomID(chat)
	if err != nil {
		return err
	}
	content := &event.BeeperDisappearingTimer{}
	if timer > 0 {
		content = &event.BeeperDisappearingTimer{Type: event.DisappearingTypeAfterSend, Timer: jsontime.MS(timer)}
	}
	_, err = c.as.BotIntent().SendStateEvent(ctx, room, event.StateBeeperDisappearingTimer, "", content)
	return classify("set disappearing timer", err)
}

// LegTimerFunc records a timer a Matrix user set on a portal's room state;
// afterRead is true for an "after_read" timer (the clock starts when the
// recipient reads the message).
type LegTimerFunc func(ctx context.Context, leg bridge.Leg, timer time.Duration, afterRead bool) error

// SetLegTimerHandler installs what happens when a user sets a portal's
// com.beeper.disappearing_timer state (see NewRouterLegTimer).
func (c *Connector) SetLegTimerHandler(fn LegTimerFunc) {
	c.mu.Lock()
	c.legTimer = fn
	c.mu.Unlock()
}

// handleTimerState applies a disappearing timer a user set on a portal.
func (c *Connector) handleTimerState(ctx context.Context, evt *event.Event) error {
	c.mu.RLock()
	fn := c.legTimer
	c.mu.RUnlock()
	if fn == nil || evt.Sender == c.bot || c.IsGhost(evt.Sender) {
		return nil
	}
	var content event.BeeperDisappearingTimer
	if err := json.Unmarshal(evt.Content.VeryRaw, &content); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Malformed disappearing timer state; ignored")
		return nil
	}
	timer := time.Duration(0)
	if content.Type != event.DisappearingTypeNone {
		timer = content.Timer.Duration
	}
	if !validTimer(content.Type, timer) {
		zerolog.Ctx(ctx).Debug().Str("timer_type", string(content.Type)).Msg("Invalid disappearing timer state; ignored")
		c.tellInvalidTimer(ctx, evt)
		return nil
	}
	afterRead := content.Type == event.DisappearingTypeAfterRead
	err := fn(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(evt.RoomID)}, timer, afterRead)
	switch {
	case errors.Is(err, bridge.ErrUnknownLeg):
		return nil // not a portal
	case errors.Is(err, bridge.ErrInvalidEvent):
		c.tellInvalidTimer(ctx, evt)
		return nil
	}
	return err
}

// validTimer reports whether a room's disappearing timer can be applied.
func validTimer(typ event.DisappearingType, timer time.Duration) bool {
	switch typ {
	case event.DisappearingTypeNone:
		return true
	case event.DisappearingTypeAfterRead, event.DisappearingTypeAfterSend:
		return timer >= 0
	}
	return false
}

// tellInvalidTimer tells a portal, once, that a timer set there was not
// applied. Rooms that are no portal are not answered.
func (c *Connector) tellInvalidTimer(ctx context.Context, evt *event.Event) {
	if p, err := c.getPortal(ctx, evt.RoomID); err != nil || p == nil {
		return
	}
	if won, err := c.claim(ctx, string(evt.ID)+"/timer"); err != nil || !won {
		return
	}
	c.sendNotice(ctx, evt.RoomID, "", "⚠️ That disappearing timer is invalid and was not applied; the conversation keeps its previous timer.")
}

// NewRouterLegTimer returns the LegTimerFunc that records an after-send
// room timer as the leg's timer and an after-read one as the
// conversation's after-read setting.
func NewRouterLegTimer(r *bridge.Router) LegTimerFunc {
	return func(ctx context.Context, leg bridge.Leg, timer time.Duration, afterRead bool) error {
		if !afterRead || timer <= 0 {
			return r.SetLegTimer(ctx, leg, timer)
		}
		conv, err := r.ConversationOf(ctx, leg)
		if err != nil {
			return err
		}
		return r.SetConversationRetentionAfterRead(ctx, conv, timer)
	}
}
