package matrix

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/identity"
)

// CommandPrefix starts a bot command in rooms other than a DM with the bot.
const CommandPrefix = "!sb "

// StartRequest is a user's `start +N` command.
type StartRequest struct {
	// User is the Matrix user who asked.
	User id.UserID
	// Phone is the E.164 number to reach. It must never be shown on
	// Matrix or logged.
	Phone string
}

// StartResult is where a started conversation lives.
type StartResult struct {
	// Room is the portal room of the user's Matrix leg.
	Room id.RoomID
	// Network carries the chat to the number; Encrypted tells whether it
	// is end-to-end encrypted there, RoomEncrypted whether the Matrix room
	// is.
	Network       bridge.NetworkID
	Encrypted     bool
	RoomEncrypted bool
	// Native is true when the number is linked to a Matrix account and the
	// room is a plain Matrix room with it (no bridging hop).
	Native bool
	// Existing is true when the conversation already existed.
	Existing bool
	// Undeletable is true when the network cannot delete messages, so
	// disappearing-message timers cannot remove copies there.
	Undeletable bool
	// Group is true when the network carries this conversation in a chat
	// of its own with the contact (a group; see PhoneGroupOpener) because
	// their one-to-one chat is in another user's conversation.
	Group bool
}

// StartFunc opens (or returns to) a conversation between a Matrix user and
// a phone number. The daemon provides it (it knows the router and which
// connectors reach numbers), usually creating the portal with
// CreatePortal. Its error text is shown to the user after phone numbers are
// redacted.
type StartFunc func(ctx context.Context, req StartRequest) (*StartResult, error)

// SetStartHandler installs what `start +N` does. Without one, `start`
// answers that it is not available yet.
func (c *Connector) SetStartHandler(fn StartFunc) {
	c.mu.Lock()
	c.starter = fn
	c.mu.Unlock()
}

var (
	e164Pattern      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	codePattern      = regexp.MustCompile(`^[0-9]{4,10}$`)
	retentionPattern = regexp.MustCompile(`^([0-9]+[smhd]|off|default)$`)
	userIDPattern    = regexp.MustCompile(`^@[^:\s]+:\S+$`)
)

// command is one bot command.
type command struct {
	name  string
	usage string
	help  string
	level int
	// valid checks the arguments; nil accepts none.
	valid func(args []string) bool
	// run answers a valid command; nil means "not available yet".
	run func(c *Connector, ctx context.Context, cc *commandContext) string
}

type commandContext struct {
	evt   *event.Event
	user  id.UserID
	level string
	args  []string
}

func noArgs(args []string) bool { return len(args) == 0 }

func oneOf(values ...string) func([]string) bool {
	return func(args []string) bool {
		if len(args) != 1 {
			return false
		}
		for _, v := range values {
			if strings.EqualFold(args[0], v) {
				return true
			}
		}
		return false
	}
}

func oneMatching(re *regexp.Regexp) func([]string) bool {
	return func(args []string) bool { return len(args) == 1 && re.MatchString(args[0]) }
}

// Permission ranks; a command needs at least its level.
const (
	levelNone = iota
	levelRelay
	levelUser
	levelAdmin
)

func rank(level string) int {
	switch level {
	case config.PermRelay:
		return levelRelay
	case config.PermUser:
		return levelUser
	case config.PermAdmin:
		return levelAdmin
	}
	return levelNone
}

var commands []*command

func init() {
	commands = []*command{
		{name: "help", usage: "help", help: "list commands", level: levelRelay,
			valid: func(args []string) bool { return len(args) <= 1 }, run: (*Connector).cmdHelp},
		{name: "start", usage: "start +<phone number>", help: "open (or return to) a conversation with that number", level: levelUser,
			valid: oneMatching(e164Pattern), run: (*Connector).cmdStart},
		{name: "link", usage: "link +<phone number>", help: "start linking that number to your identity (a code is sent to it)", level: levelUser,
			valid: oneMatching(e164Pattern)},
		{name: "verify", usage: "verify <code>", help: "finish linking with the code you received", level: levelUser,
			valid: oneMatching(codePattern)},
		{name: "unlink", usage: "unlink +<phone number>", help: "remove a linked number and every route derived from it", level: levelUser,
			valid: oneMatching(e164Pattern)},
		{name: "links", usage: "links", help: "list your linked addresses and preferences", level: levelUser, valid: noArgs},
		{name: "prefer", usage: "prefer matrix|whatsapp|sms", help: "where messages for you are delivered when you have several addresses", level: levelUser,
			valid: oneOf("matrix", "whatsapp", "sms")},
		{name: "sms", usage: "sms on|off", help: "opt in to (or out of) SMS fallback for your outgoing chats", level: levelUser,
			valid: oneOf("on", "off"), run: (*Connector).cmdSMS},
		{name: "reveal", usage: "reveal on|off", help: "whether contacts may see your phone number", level: levelUser,
			valid: oneOf("on", "off"), run: (*Connector).cmdReveal},
		{name: "login", usage: "login whatsapp [+<phone number>|relay]", help: "log in your WhatsApp account (QR code, or pairing code with a number)", level: levelUser,
			valid: func(args []string) bool {
				if len(args) == 0 || !strings.EqualFold(args[0], "whatsapp") {
					return false
				}
				return len(args) == 1 || (len(args) == 2 && (e164Pattern.MatchString(args[1]) || strings.EqualFold(args[1], "relay")))
			}},
		{name: "logout", usage: "logout whatsapp [relay]", help: "log out and delete your WhatsApp session (relay: the bridge's relay account, admins only)", level: levelUser,
			valid: func(args []string) bool {
				return len(args) >= 1 && len(args) <= 2 && strings.EqualFold(args[0], "whatsapp") &&
					(len(args) == 1 || strings.EqualFold(args[1], "relay"))
			}},
		{name: "retention", usage: "retention 30s|10m|24h|7d|30d|365d|off|default", help: "set this conversation's disappearing timer", level: levelUser,
			valid: oneMatching(retentionPattern), run: (*Connector).cmdRetention},
		{name: "block", usage: "block", help: "stop receiving from the contact in this room", level: levelUser, valid: noArgs},
		{name: "unblock", usage: "unblock", help: "receive from the contact in this room again", level: levelUser, valid: noArgs},
		{name: "report", usage: "report [reason]", help: "report the contact in this room to the admins", level: levelUser,
			valid: func([]string) bool { return true }},
		{name: "whoami", usage: "whoami", help: "your identity, logins and settings", level: levelRelay, valid: noArgs, run: (*Connector).cmdWhoami},
		{name: "admin", usage: "admin suspend @user|unsuspend @user|flags|status", help: "bridge administration", level: levelAdmin,
			valid: func(args []string) bool {
				switch {
				case len(args) == 1:
					return strings.EqualFold(args[0], "flags") || strings.EqualFold(args[0], "status")
				case len(args) == 2:
					return (strings.EqualFold(args[0], "suspend") || strings.EqualFold(args[0], "unsuspend")) && userIDPattern.MatchString(args[1])
				}
				return false
			}},
	}
}

func findCommand(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

func (c *Connector) permissionLevel(user id.UserID) string {
	return c.cfg.PermissionLevel(string(user))
}

// runCommandOnce answers a command event once: the event is claimed before
// the command runs, so concurrent or repeated transactions carrying it do
// not run it again, and a reply that fails to send is not retried.
func (c *Connector) runCommandOnce(ctx context.Context, evt *event.Event, text string) error {
	won, err := c.claim(ctx, string(evt.ID))
	if err != nil || !won {
		return err
	}
	reply := c.runCommand(ctx, evt, text)
	c.sendNotice(ctx, evt.RoomID, evt.ID, reply)
	return nil
}

// runCommand returns the answer to a command. It never returns "".
func (c *Connector) runCommand(ctx context.Context, evt *event.Event, text string) string {
	fields := strings.Fields(text)
	level := c.permissionLevel(evt.Sender)
	if rank(level) < levelRelay {
		return "You are not allowed to use this bridge."
	}
	if len(fields) == 0 {
		fields = []string{"help"}
	}
	name := strings.ToLower(fields[0])
	cc := &commandContext{evt: evt, user: evt.Sender, level: level, args: fields[1:]}
	zerolog.Ctx(ctx).Debug().Str("command", name).Msg("Running command")
	cmd := findCommand(name)
	if cmd == nil {
		return "unknown command, try help"
	}
	required := cmd.level
	if (name == "login" || name == "logout") && len(cc.args) == 2 && strings.EqualFold(cc.args[1], "relay") {
		required = levelAdmin
	}
	if rank(level) < required {
		if required == levelAdmin {
			return fmt.Sprintf("%s is only available to bridge admins.", name)
		}
		return fmt.Sprintf("%s needs user permission on this bridge; you have %s.", name, level)
	}
	if cmd.valid != nil && !cmd.valid(cc.args) {
		return "Usage: " + cmd.usage + " — " + cmd.help
	}
	if cmd.run != nil {
		return cmd.run(c, ctx, cc)
	}
	if fn := c.commandHandler(name); fn != nil {
		answer := fn(ctx, &CommandRequest{User: cc.user, Level: level, Room: evt.RoomID, Event: evt.ID, Name: name, Args: cc.args})
		if answer == "" {
			answer = "Done."
		}
		return RedactPhoneNumbers(answer)
	}
	return commandNotAvailable(name)
}

func (c *Connector) cmdHelp(_ context.Context, cc *commandContext) string {
	if len(cc.args) == 1 {
		if cmd := findCommand(strings.ToLower(cc.args[0])); cmd != nil {
			return "Usage: " + cmd.usage + " — " + cmd.help
		}
		return "unknown command, try help"
	}
	var b strings.Builder
	b.WriteString("Commands (in a direct chat with me no prefix is needed; elsewhere start with \"!sb \"):\n")
	for _, cmd := range commands {
		if rank(cc.level) < cmd.level {
			continue
		}
		b.WriteString("• ")
		b.WriteString(cmd.usage)
		b.WriteString(" — ")
		b.WriteString(cmd.help)
		if cmd.run == nil && c.commandHandler(cmd.name) == nil {
			b.WriteString(" (not available yet)")
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// SetIdentity gives the connector the store of people's preferences, which
// the sms, reveal and whoami commands use. Call before Start.
func (c *Connector) SetIdentity(s *identity.Store) {
	c.mu.Lock()
	c.ident = s
	c.mu.Unlock()
}

func (c *Connector) identityStore() *identity.Store {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ident
}

// UserAddress is a Matrix user's address in the identity store.
func UserAddress(user id.UserID) bridge.Address {
	return bridge.Address{Network: bridge.NetworkMatrix, ID: string(user)}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func (c *Connector) cmdWhoami(ctx context.Context, cc *commandContext) string {
	var prefs identity.Prefs
	if s := c.identityStore(); s != nil {
		p, err := s.Prefs(ctx, UserAddress(cc.user))
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("Failed to read preferences")
			return "Could not read your settings right now; please try again."
		}
		prefs = p
	}
	lines := []string{
		fmt.Sprintf("You are %s, with %s permission on this bridge.", cc.user, cc.level),
		"SMS fallback: " + onOff(prefs.SMS),
		"Reveal my number: " + onOff(prefs.Reveal),
	}
	lines = append(lines, c.whoamiLines(ctx, cc.user)...)
	return strings.Join(lines, "\n")
}

func (c *Connector) cmdSMS(ctx context.Context, cc *commandContext) string {
	s := c.identityStore()
	if s == nil {
		return "sms is not available yet"
	}
	on := strings.EqualFold(cc.args[0], "on")
	if err := s.SetSMS(ctx, UserAddress(cc.user), on); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to save SMS preference")
		return "Could not save that setting right now; please try again."
	}
	if on {
		return "SMS fallback is on: `start +N` may now reach numbers by SMS when no encrypted network can. " +
			"SMS is not end-to-end encrypted: phone carriers can read those messages."
	}
	return "SMS fallback is off: new chats will not use SMS."
}

func (c *Connector) cmdReveal(ctx context.Context, cc *commandContext) string {
	s := c.identityStore()
	if s == nil {
		return "reveal is not available yet"
	}
	on := strings.EqualFold(cc.args[0], "on")
	if err := s.SetReveal(ctx, UserAddress(cc.user), on); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to save reveal preference")
		return "Could not save that setting right now; please try again."
	}
	if on {
		return "Reveal is on: contacts may see your phone number once you link one."
	}
	return "Reveal is off: your phone number stays hidden from contacts."
}

func (c *Connector) cmdStart(ctx context.Context, cc *commandContext) string {
	c.mu.RLock()
	starter := c.starter
	c.mu.RUnlock()
	if starter == nil {
		return "start is not available yet"
	}
	res, err := starter(ctx, StartRequest{User: cc.user, Phone: cc.args[0]})
	if err != nil {
		zerolog.Ctx(ctx).Warn().Str("error", RedactPhoneNumbers(err.Error())).Msg("start command failed")
		return "Could not start the chat: " + RedactPhoneNumbers(err.Error())
	}
	verb := "Started"
	if res.Existing {
		verb = "You already have"
	}
	var how string
	switch {
	case res.Native:
		how = "It is a Matrix room with the account linked to that number (no SMS or WhatsApp hop)"
		if res.RoomEncrypted {
			how += " and is end-to-end encrypted."
		} else {
			how += "; the room is not encrypted."
		}
	case !res.Encrypted:
		how = fmt.Sprintf("It is carried by %s and is not end-to-end encrypted.", res.Network)
	case res.RoomEncrypted:
		how = fmt.Sprintf("It is carried by %s and is end-to-end encrypted on every hop (the bridge decrypts and re-encrypts between Matrix and %s).", res.Network, res.Network)
	default:
		how = fmt.Sprintf("It is carried by %s, end-to-end encrypted there; this Matrix room is not encrypted, so not every hop is end-to-end encrypted.", res.Network)
	}
	answer := fmt.Sprintf("%s a chat with that number: %s. %s", verb, res.Room.URI().MatrixToURL(), how)
	if res.Group {
		answer += fmt.Sprintf(" On %s it is a group of its own with the contact, named after you, not a one-to-one chat.", res.Network)
	}
	if res.Undeletable {
		answer += fmt.Sprintf(" %s cannot delete messages: when this chat's messages expire they are removed on Matrix "+
			"and from the bridge, but copies delivered by %s stay on the contact's phone.", res.Network, res.Network)
	}
	return answer
}
