package commands

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// Request is one command as a front end parsed it.
type Request struct {
	// User sent the command (on Matrix: {matrix, "@alice:example.org"});
	// Level is their permission level.
	User  bridge.Address
	Level Level
	// Room is where the command was sent (on Matrix a room ID: a DM with
	// the bot, or a bridged room with the "!sb " prefix); Event is the
	// command's own event ID, "" where there is none.
	Room  bridge.ChatID
	Event string
	// Name is the command in lower case; Args are its arguments as typed,
	// split on spaces, and Line all of them as one string (trimmed).
	Name string
	Args []string
	Line string
	// Region is the region a national phone number is read in ("" when
	// none is configured: numbers must then start with +). Run sets it.
	Region string
	// Phone is the E.164 number a Phone argument check read from Line.
	Phone string
	// Reply sends a later step of a command that goes on after its answer
	// (a login's QR codes, its end). Safe from any goroutine, after Run
	// returned too; Run sets a no-op when the front end gives none.
	Reply func(ctx context.Context, step Step)
}

// IsAdmin reports whether the sender is a bridge admin.
func (r *Request) IsAdmin() bool { return r.Level >= LevelAdmin }

// Func answers a command with the text the user is shown ("" becomes
// "Done."). It never includes a phone number the user did not type
// (front ends redact numbers in answers anyway, unless Verbatim).
type Func func(ctx context.Context, req *Request) string

// ArgCheck checks a request's arguments before the command runs (and may
// fill in what it read, like Request.Phone). ErrUsage answers with the
// usage; any other error's text is shown before it, so it names the
// problem (and never holds the input).
type ArgCheck func(req *Request) error

// Command is one bot command.
type Command struct {
	// Name is what the user types, in lower case.
	Name string
	// Usage shows the syntax ("start +<phone number>"), Help what it does.
	Usage string
	Help  string
	// Level is the permission level it needs; LevelFor, when set, may
	// raise it for some arguments (`login whatsapp relay`: admins).
	Level    Level
	LevelFor func(args []string) Level
	// Args checks the arguments; nil accepts none.
	Args ArgCheck
	// Run does it; required.
	Run Func
	// Verbatim answers are shown as they are: they name rooms or users
	// (matrix.to links, user IDs), never a number the user did not type.
	// Other answers have phone numbers redacted by the front end.
	Verbatim bool
}

// level is what req needs to run c.
func (c *Command) level(args []string) Level {
	if c.LevelFor != nil {
		if l := c.LevelFor(args); l > c.Level {
			return l
		}
	}
	return c.Level
}

// UsageText is the answer to arguments that do not fit.
func (c *Command) UsageText() string { return "Usage: " + c.Usage + " — " + c.Help }

// NoArgs accepts no arguments.
func NoArgs(req *Request) error {
	if len(req.Args) != 0 {
		return ErrUsage
	}
	return nil
}

// AnyArgs accepts anything.
func AnyArgs(*Request) error { return nil }

// MaxArgs accepts at most n arguments.
func MaxArgs(n int) ArgCheck {
	return func(req *Request) error {
		if len(req.Args) > n {
			return ErrUsage
		}
		return nil
	}
}

// OneOf accepts one argument among values (any case).
func OneOf(values ...string) ArgCheck {
	return func(req *Request) error {
		if len(req.Args) == 1 {
			for _, v := range values {
				if strings.EqualFold(req.Args[0], v) {
					return nil
				}
			}
		}
		return ErrUsage
	}
}

// OneMatching accepts one argument matching re.
func OneMatching(re *regexp.Regexp) ArgCheck {
	return func(req *Request) error {
		if len(req.Args) != 1 || !re.MatchString(req.Args[0]) {
			return ErrUsage
		}
		return nil
	}
}

// PhoneArg accepts a phone number as people write it, taking the whole
// rest of the line (`start +1 (202) 555-0143`), and puts its E.164 form in
// Request.Phone (phone.Normalize, in Request.Region).
func PhoneArg(req *Request) error {
	if req.Line == "" {
		return ErrUsage
	}
	number, err := ReadPhone(req.Line, req.Region)
	if err != nil {
		return err
	}
	req.Phone = number
	return nil
}

// ReadPhone reads a phone number typed as an argument (phone.Normalize);
// its error names the problem, never the input.
func ReadPhone(s, region string) (string, error) {
	number, err := phone.Normalize(s, region)
	if err != nil {
		return "", fmt.Errorf("that is not a phone number I can read (%w)", err)
	}
	return number, nil
}

// problem is the answer to arguments check refused with err.
func problem(c *Command, err error) string {
	if errors.Is(err, ErrUsage) {
		return c.UsageText()
	}
	text := err.Error()
	if text != "" {
		text = strings.ToUpper(text[:1]) + text[1:]
	}
	return text + ".\n" + c.UsageText()
}
