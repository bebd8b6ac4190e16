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
	// is end-to-end encrypted there.
	Network   bridge.NetworkID
	Encrypted bool
	// Existing is true when the conversation already existed.
	Existing bool
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
			valid: oneOf("on", "off")},
		{name: "reveal", usage: "reveal on|off", help: "whether contacts may see your phone number", level: levelUser,
			valid: oneOf("on", "off")},
		{name: "login", usage: "login whatsapp [+<phone number>|relay]", help: "log in your WhatsApp account (QR code, or pairing code with a number)", level: levelUser,
			valid: func(args []string) bool {
				if len(args) == 0 || !strings.EqualFold(args[0], "whatsapp") {
					return false
				}
				return len(args) == 1 || (len(args) == 2 && (e164Pattern.MatchString(args[1]) || strings.EqualFold(args[1], "relay")))
			}},
		{name: "logout", usage: "logout whatsapp", help: "log out and delete your WhatsApp session", level: levelUser,
			valid: oneOf("whatsapp")},
		{name: "retention", usage: "retention 30s|10m|24h|7d|30d|365d|off|default", help: "set this conversation's disappearing timer", level: levelUser,
			valid: oneMatching(retentionPattern)},
		{name: "block", usage: "block", help: "stop receiving from the contact in this room", level: levelUser, valid: noArgs},
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

// runCommandOnce answers a command event unless an earlier transaction
// already did.
func (c *Connector) runCommandOnce(ctx context.Context, evt *event.Event, text string) error {
	done, err := c.eventHandled(ctx, evt.ID)
	if err != nil || done {
		return err
	}
	reply := c.runCommand(ctx, evt, text)
	c.sendNotice(ctx, evt.RoomID, evt.ID, reply)
	return c.markEvent(ctx, evt.ID)
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
	if name == "login" && len(cc.args) == 2 && strings.EqualFold(cc.args[1], "relay") {
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
	if cmd.run == nil {
		return name + " is not available yet"
	}
	return cmd.run(c, ctx, cc)
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
		if cmd.run == nil {
			b.WriteString(" (not available yet)")
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (c *Connector) cmdWhoami(_ context.Context, cc *commandContext) string {
	return fmt.Sprintf("You are %s, with %s permission on this bridge.\n"+
		"Linked addresses: none (linking is not available yet)\n"+
		"WhatsApp login: none\n"+
		"SMS fallback: off\n"+
		"Reveal my number: off", cc.user, cc.level)
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
	e2ee := "not end-to-end encrypted"
	if res.Encrypted {
		e2ee = "end-to-end encrypted"
	}
	verb := "Started"
	if res.Existing {
		verb = "You already have"
	}
	return fmt.Sprintf("%s a chat with that number: %s. It is carried by %s and is %s.",
		verb, res.Room.URI().MatrixToURL(), res.Network, e2ee)
}
