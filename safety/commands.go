package safety

import (
	"context"
	"regexp"
	"strings"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
)

var userIDPattern = regexp.MustCompile(`^@[^:\s]+:\S+$`)

// Register registers the safety commands (block, unblock, report, admin)
// and the safety line of whoami.
func (s *Service) Register(reg *commands.Registry) error {
	reg.AddWhoami(func(ctx context.Context, user bridge.Address) []string { return s.Whoami(ctx, user.ID) })
	return reg.Register(s.Commands()...)
}

// Commands are the safety commands, answered by s.
func (s *Service) Commands() []commands.Command {
	return []commands.Command{
		{Name: "block", Usage: "block", Help: "stop receiving from the contact in this room",
			Level: commands.LevelUser, Args: commands.NoArgs,
			Run: func(ctx context.Context, req *commands.Request) string {
				return s.Block(ctx, req.User.ID, string(req.Room))
			}},
		{Name: "unblock", Usage: "unblock", Help: "receive from the contact in this room again",
			Level: commands.LevelUser, Args: commands.NoArgs,
			Run: func(ctx context.Context, req *commands.Request) string {
				return s.Unblock(ctx, req.User.ID, string(req.Room))
			}},
		{Name: "report", Usage: "report [reason]", Help: "report the contact in this room to the admins",
			Level: commands.LevelUser, Args: commands.AnyArgs,
			Run: func(ctx context.Context, req *commands.Request) string {
				return s.Report(ctx, req.User.ID, string(req.Room), req.Args)
			}},
		{Name: "admin", Usage: "admin suspend @user|unsuspend @user|flags|status", Help: "bridge administration",
			Level: commands.LevelAdmin, Args: adminArgs,
			Run: func(ctx context.Context, req *commands.Request) string {
				return s.Admin(ctx, req.User.ID, req.Args)
			}},
	}
}

func adminArgs(req *commands.Request) error {
	args := req.Args
	switch {
	case len(args) == 1 && (strings.EqualFold(args[0], "flags") || strings.EqualFold(args[0], "status")):
		return nil
	case len(args) == 2 && (strings.EqualFold(args[0], "suspend") || strings.EqualFold(args[0], "unsuspend")) && userIDPattern.MatchString(args[1]):
		return nil
	}
	return commands.ErrUsage
}
