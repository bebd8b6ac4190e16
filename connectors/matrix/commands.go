package matrix

import (
	"context"
	"sync"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// The Matrix connector is one front end of the command registry
// (commands.Registry): it reads a bot command from a message (in a DM
// with the bot, or after CommandPrefix in any room), runs it through the
// registry, which checks permission and arguments, and sends the answer as
// a notice with phone numbers redacted. Later steps of a command (a login's
// QR codes) are drawn by StepReplier.

// CommandPrefix starts a bot command in rooms other than a DM with the bot.
const CommandPrefix = "!sb "

// SetCommands gives the connector the registry its bot commands come from
// (the daemon registers every owner's commands there). Call before Start.
// Without one only help and whoami answer.
func (c *Connector) SetCommands(reg *commands.Registry) {
	c.mu.Lock()
	c.cmds = reg
	c.mu.Unlock()
}

var (
	bareRegistryOnce sync.Once
	bareRegistry     *commands.Registry
)

func (c *Connector) commandRegistry() *commands.Registry {
	c.mu.RLock()
	reg := c.cmds
	c.mu.RUnlock()
	if reg != nil {
		return reg
	}
	bareRegistryOnce.Do(func() { bareRegistry = commands.New(commands.Options{}) })
	return bareRegistry
}

func (c *Connector) permissionLevel(user id.UserID) string {
	return c.cfg.Permissions.Level(string(user))
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
	name, args, line := commands.Parse(text)
	req := &commands.Request{
		User:  UserAddress(evt.Sender),
		Level: commands.LevelOf(c.permissionLevel(evt.Sender)),
		Room:  bridge.ChatID(evt.RoomID),
		Event: string(evt.ID),
		Name:  name, Args: args, Line: line,
		Reply: StepReplier(c, evt.RoomID),
	}
	answer := c.commandRegistry().Run(ctx, req)
	if answer.Verbatim {
		return answer.Text
	}
	return phone.Redact(answer.Text)
}

// SetIdentity gives the connector the store of people's links and
// preferences, which contact names (`reveal`) and `start` routing use.
// Call before Start.
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

// mayUse reports whether user has any permission on this bridge (relay
// or more).
func (c *Connector) mayUse(user id.UserID) bool {
	return commands.LevelOf(c.permissionLevel(user)) >= commands.LevelRelay
}
