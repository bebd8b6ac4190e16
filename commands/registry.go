package commands

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
)

// WhoamiFunc returns the lines `whoami` adds for a user (a connector's
// logins, linked addresses, safety state…). No phone number.
type WhoamiFunc func(ctx context.Context, user bridge.Address) []string

// Options configure a Registry.
type Options struct {
	// Region is the region national phone numbers are read in; "" asks
	// for the international form.
	Region string
}

// Registry holds the commands. Register everything before the front ends
// start; Run is safe for concurrent use.
type Registry struct {
	region string

	mu     sync.RWMutex
	cmds   []*Command
	byName map[string]*Command
	whoami []WhoamiFunc
}

// New returns a registry holding the generic commands, help and whoami.
func New(opts Options) *Registry {
	r := &Registry{region: opts.Region, byName: map[string]*Command{}}
	_ = r.Register(Command{
		Name: "help", Usage: "help", Help: "list commands", Level: LevelRelay,
		Args: MaxArgs(1), Run: r.runHelp, Verbatim: true,
	}, Command{
		Name: "whoami", Usage: "whoami", Help: "your identity, logins and settings", Level: LevelRelay,
		Args: NoArgs, Run: r.runWhoami, Verbatim: true,
	})
	return r
}

// Register adds commands. A name may be registered once.
func (r *Registry) Register(cmds ...Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range cmds {
		c := cmds[i]
		c.Name = strings.ToLower(strings.TrimSpace(c.Name))
		switch {
		case c.Name == "" || strings.ContainsAny(c.Name, " \t\n") || c.Usage == "" || c.Run == nil:
			return fmt.Errorf("%w: %q", ErrInvalidCommand, c.Name)
		case r.byName[c.Name] != nil:
			return fmt.Errorf("%w: %q", ErrDuplicate, c.Name)
		}
		if c.Args == nil {
			c.Args = NoArgs
		}
		r.cmds = append(r.cmds, &c)
		r.byName[c.Name] = &c
	}
	return nil
}

// AddWhoami adds lines to the answer of `whoami`, after those added before.
func (r *Registry) AddWhoami(fn WhoamiFunc) {
	r.mu.Lock()
	r.whoami = append(r.whoami, fn)
	r.mu.Unlock()
}

// Lookup returns the command registered under name (any case).
func (r *Registry) Lookup(name string) (Command, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c := r.byName[strings.ToLower(name)]
	if c == nil {
		return Command{}, false
	}
	return *c, true
}

// Commands lists the registered commands in the order they were
// registered.
func (r *Registry) Commands() []Command {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Command, len(r.cmds))
	for i, c := range r.cmds {
		out[i] = *c
	}
	return out
}

// Parse splits a command line into its name (lower case, "help" when the
// line is empty), its arguments and the rest of the line after the name.
func Parse(text string) (name string, args []string, line string) {
	text = strings.TrimSpace(text)
	fields := strings.Fields(text)
	if len(fields) == 0 {
		return "help", nil, ""
	}
	rest := strings.TrimSpace(strings.TrimPrefix(text, fields[0]))
	return strings.ToLower(fields[0]), fields[1:], rest
}

// Answer is what Run answers.
type Answer struct {
	Text string
	// Verbatim: show Text as is (see Command.Verbatim); otherwise the
	// front end redacts phone numbers in it.
	Verbatim bool
	// Refused says why the command did not run (RefusedNone: it ran), for
	// front ends that answer with a status (the provisioning API); Text
	// is the answer either way.
	Refused Refusal
}

// Refusal is why Run or Check refused a request before the command ran.
type Refusal int

// Refusals.
const (
	RefusedNone    Refusal = iota
	RefusedNoUse           // the sender may not use the bridge at all
	RefusedUnknown         // no such command
	RefusedLevel           // the command needs a higher permission level
	RefusedArgs            // the arguments do not fit (Text: the usage)
)

// Check does what Run does before a command runs: it checks the sender may
// use the bridge, finds the command, checks the permission level and the
// arguments (filling in what they read, like Request.Phone). It returns
// the command, or a refusal with the answer Run would give.
func (r *Registry) Check(ctx context.Context, req *Request) (Command, Answer) {
	if req.Level < LevelRelay {
		return Command{}, Answer{Text: "You are not allowed to use this bridge.", Refused: RefusedNoUse}
	}
	if req.Name == "" {
		req.Name = "help"
	}
	if req.Reply == nil {
		req.Reply = func(context.Context, Step) {}
	}
	req.Region = r.region
	cmd, ok := r.Lookup(req.Name)
	if !ok {
		return Command{}, Answer{Text: "unknown command, try help", Refused: RefusedUnknown}
	}
	if required := cmd.level(req.Args); req.Level < required {
		if required == LevelAdmin {
			return cmd, Answer{Text: fmt.Sprintf("%s is only available to bridge admins.", cmd.Name), Refused: RefusedLevel}
		}
		return cmd, Answer{Text: fmt.Sprintf("%s needs %s permission on this bridge; you have %s.", cmd.Name, required, req.Level), Refused: RefusedLevel}
	}
	if err := cmd.Args(req); err != nil {
		return cmd, Answer{Text: problem(&cmd, err), Refused: RefusedArgs}
	}
	return cmd, Answer{}
}

// Run answers req: it checks the sender may use the bridge, finds the
// command, checks the permission level and the arguments (Check), and runs
// it. The answer's text is never "".
func (r *Registry) Run(ctx context.Context, req *Request) Answer {
	zerolog.Ctx(ctx).Debug().Str("command", req.Name).Msg("Running command")
	cmd, refusal := r.Check(ctx, req)
	if refusal.Refused != RefusedNone {
		return refusal
	}
	text := cmd.Run(ctx, req)
	if text == "" {
		text = "Done."
	}
	return Answer{Text: text, Verbatim: cmd.Verbatim}
}

// Help is the list of commands a user of level may run, one a line.
func (r *Registry) Help(level Level) string {
	var b strings.Builder
	b.WriteString("Commands (in a direct chat with me no prefix is needed; elsewhere start with \"!sb \"):")
	for _, c := range r.Commands() {
		if level < c.Level {
			continue
		}
		b.WriteString("\n• ")
		b.WriteString(c.Usage)
		b.WriteString(" — ")
		b.WriteString(c.Help)
	}
	return b.String()
}

func (r *Registry) runHelp(_ context.Context, req *Request) string {
	if len(req.Args) == 1 {
		if c, ok := r.Lookup(req.Args[0]); ok {
			return c.UsageText()
		}
		return "unknown command, try help"
	}
	return r.Help(req.Level)
}

func (r *Registry) runWhoami(ctx context.Context, req *Request) string {
	r.mu.RLock()
	fns := append([]WhoamiFunc(nil), r.whoami...)
	r.mu.RUnlock()
	lines := []string{fmt.Sprintf("You are %s, with %s permission on this bridge.", req.User.ID, req.Level)}
	for _, fn := range fns {
		lines = append(lines, fn(ctx, req.User)...)
	}
	return strings.Join(lines, "\n")
}
