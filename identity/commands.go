package identity

import (
	"context"
	"regexp"
	"strings"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

var codePattern = regexp.MustCompile(`^[0-9]{4,10}$`)

// Register registers the identity commands (link, verify, unlink, links,
// prefer, sms, reveal) and the identity lines of whoami.
func (s *Service) Register(reg *commands.Registry) error {
	reg.AddWhoami(s.whoami)
	return reg.Register(s.Commands()...)
}

// Commands are the identity commands, answered by s.
func (s *Service) Commands() []commands.Command {
	return []commands.Command{
		{Name: "link", Usage: "link +<phone number>", Help: "start linking that number to your identity (a code is sent to it)",
			Level: commands.LevelUser, Args: commands.PhoneArg,
			Run: func(ctx context.Context, req *commands.Request) string { return s.Link(ctx, req.User, req.Phone) }},
		{Name: "verify", Usage: "verify <code>", Help: "finish linking with the code you received",
			Level: commands.LevelUser, Args: commands.OneMatching(codePattern),
			Run: func(ctx context.Context, req *commands.Request) string { return s.Verify(ctx, req.User, req.Args[0]) }},
		{Name: "unlink", Usage: "unlink +<phone number>", Help: "remove a linked number and every route derived from it",
			Level: commands.LevelUser, Args: commands.PhoneArg,
			Run: func(ctx context.Context, req *commands.Request) string { return s.Unlink(ctx, req.User, req.Phone) }},
		{Name: "links", Usage: "links", Help: "list your linked addresses and preferences",
			Level: commands.LevelUser, Args: commands.NoArgs,
			Run: func(ctx context.Context, req *commands.Request) string { return s.Links(ctx, req.User) }},
		{Name: "prefer", Usage: "prefer matrix|whatsapp|sms", Help: "where messages for you are delivered when you have several addresses",
			Level: commands.LevelUser, Args: commands.OneOf("matrix", "whatsapp", "sms"),
			Run: func(ctx context.Context, req *commands.Request) string { return s.Prefer(ctx, req.User, req.Args[0]) }},
		{Name: "sms", Usage: "sms on|off", Help: "opt in to (or out of) SMS fallback for your outgoing chats",
			Level: commands.LevelUser, Args: commands.OneOf("on", "off"), Run: s.smsCommand},
		{Name: "reveal", Usage: "reveal on|off", Help: "whether contacts may see your phone number",
			Level: commands.LevelUser, Args: commands.OneOf("on", "off"), Run: s.revealCommand},
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// whoami is what identity adds to `whoami`: the SMS and reveal settings,
// the linked addresses (masked) and the preferred network.
func (s *Service) whoami(ctx context.Context, user bridge.Address) []string {
	prefs, err := s.store.Prefs(ctx, user)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read preferences")
		return []string{"Could not read your settings right now; please try again."}
	}
	lines := []string{"SMS fallback: " + onOff(prefs.SMS), "Reveal my number: " + onOff(prefs.Reveal)}
	summary, err := s.Summary(ctx, user)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to read links for whoami")
		return append(lines, "Linked addresses: (could not be read right now)")
	}
	return append(lines, summary...)
}

func (s *Service) smsCommand(ctx context.Context, req *commands.Request) string {
	on := strings.EqualFold(req.Args[0], "on")
	if err := s.store.SetSMS(ctx, req.User, on); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to save SMS preference")
		return "Could not save that setting right now; please try again."
	}
	if on {
		return "SMS fallback is on: `start +N` may now reach numbers by SMS when no encrypted network can. " +
			"SMS is not end-to-end encrypted: phone carriers can read those messages."
	}
	return "SMS fallback is off: new chats will not use SMS."
}

func (s *Service) revealCommand(ctx context.Context, req *commands.Request) string {
	on := strings.EqualFold(req.Args[0], "on")
	if err := s.store.SetReveal(ctx, req.User, on); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to save reveal preference")
		return "Could not save that setting right now; please try again."
	}
	if on {
		return "Reveal is on: contacts may see your phone number once you link one."
	}
	return "Reveal is off: your phone number stays hidden from contacts."
}
