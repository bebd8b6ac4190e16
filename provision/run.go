package provision

import (
	"context"
	"net/http"
	"strings"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// request is the bot command a user would have typed, as the Matrix bot
// parses it (commands.Parse), so arguments are read exactly as there.
func (s *Server) request(c caller, text, room string) *commands.Request {
	name, args, line := commands.Parse(text)
	return &commands.Request{
		User: c.address(), Level: c.level, Room: bridge.ChatID(room),
		Name: name, Args: args, Line: line,
	}
}

// check runs the registry's checks for the command text would be, and
// returns the refusal as an error answer (nil: it may run).
func (s *Server) check(ctx context.Context, c caller, text string) (*commands.Request, *Error) {
	req := s.request(c, text, "")
	_, ans := s.opts.Commands.Check(ctx, req)
	return req, refusal(ans)
}

// run runs the command text for c through the registry, with an outcome
// its owners may record into, and returns the answer as the user sees it
// (numbers redacted unless the command's answers are verbatim) or the
// refusal.
func (s *Server) run(ctx context.Context, c caller, text, room string) (string, *outcome, *Error) {
	ctx, out := withOutcome(ctx)
	ans := s.opts.Commands.Run(ctx, s.request(c, text, room))
	if e := refusal(ans); e != nil {
		return "", out, e
	}
	return shown(ans), out, nil
}

// shown is an answer's text as the bot shows it.
func shown(ans commands.Answer) string {
	if ans.Verbatim {
		return ans.Text
	}
	return phone.Redact(ans.Text)
}

// refusal maps a registry refusal to an error answer with the bot's text.
func refusal(ans commands.Answer) *Error {
	switch ans.Refused {
	case commands.RefusedNone:
		return nil
	case commands.RefusedNoUse, commands.RefusedLevel:
		return errorf(http.StatusForbidden, CodeForbidden, ans.Text)
	case commands.RefusedArgs:
		return errorf(http.StatusBadRequest, CodeBadRequest, ans.Text)
	}
	return errorf(http.StatusNotFound, CodeNotFound, ans.Text)
}

// oneLine keeps a field from smuggling a second line into a command.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
