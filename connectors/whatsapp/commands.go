package whatsapp

import (
	"context"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

// Register registers `login whatsapp…` and `logout whatsapp…` answered by
// c, and its whoami lines. With c nil (whatsapp.enabled: false) the
// commands answer that WhatsApp is not configured on this bridge.
func Register(reg *commands.Registry, c *Connector) error {
	if c != nil {
		reg.AddWhoami(func(ctx context.Context, user bridge.Address) []string { return c.Whoami(ctx, id.UserID(user.ID)) })
	}
	return reg.Register(Commands(c)...)
}

// Commands are login and logout, answered by c (nil: not configured).
func Commands(c *Connector) []commands.Command {
	login, logout := NotConfiguredCommand, NotConfiguredCommand
	if c != nil {
		login, logout = c.LoginCommand, c.LogoutCommand
	}
	return []commands.Command{
		{Name: "login", Usage: "login whatsapp [+<phone number>|relay]",
			Help:  "log in your WhatsApp account (QR code, or pairing code with a number)",
			Level: commands.LevelUser, LevelFor: relayNeedsAdmin, Args: loginArgs, Run: login},
		{Name: "logout", Usage: "logout whatsapp [relay]",
			Help:  "log out and delete your WhatsApp session (relay: the bridge's relay account, admins only)",
			Level: commands.LevelUser, LevelFor: relayNeedsAdmin, Args: logoutArgs, Run: logout},
	}
}

// relayNeedsAdmin: `login whatsapp relay` and `logout whatsapp relay` are
// for bridge admins.
func relayNeedsAdmin(args []string) commands.Level {
	if len(args) == 2 && strings.EqualFold(args[1], "relay") {
		return commands.LevelAdmin
	}
	return commands.LevelNone
}

// loginArgs accepts `whatsapp`, `whatsapp relay` and `whatsapp <number>`
// with the number as people write it (the rest of the line).
func loginArgs(req *commands.Request) error {
	if len(req.Args) == 0 || !strings.EqualFold(req.Args[0], "whatsapp") {
		return commands.ErrUsage
	}
	if len(req.Args) == 1 || (len(req.Args) == 2 && strings.EqualFold(req.Args[1], "relay")) {
		return nil
	}
	rest := strings.Join(req.Args[1:], " ")
	if line, ok := strings.CutPrefix(req.Line, req.Args[0]); ok {
		rest = strings.TrimSpace(line) // as typed, invisible characters too
	}
	number, err := commands.ReadPhone(rest, req.Region)
	if err != nil {
		return err
	}
	req.Phone = number
	return nil
}

func logoutArgs(req *commands.Request) error {
	if len(req.Args) >= 1 && len(req.Args) <= 2 && strings.EqualFold(req.Args[0], "whatsapp") &&
		(len(req.Args) == 1 || strings.EqualFold(req.Args[1], "relay")) {
		return nil
	}
	return commands.ErrUsage
}
