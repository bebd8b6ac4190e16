package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// CodeSender sends a one-off system text (a verification code) to a phone
// number on its network, outside any conversation. The text must not be
// stored or logged.
type CodeSender interface {
	Network() bridge.NetworkID
	SendCode(ctx context.Context, number, text string) error
}

// CodeReacher is a CodeSender that can tell whether a number is reachable
// on its network (WhatsApp); one that says no is skipped.
type CodeReacher interface {
	CodeSender
	Reaches(ctx context.Context, owner string, number string) (bool, error)
}

// Service answers the identity commands (link, verify, unlink, links,
// prefer) for a person. Its answers are the bot's notices; they show a
// linked number only masked, to its owner.
type Service struct {
	store   *Store
	verify  *Verifier
	senders []CodeSender
}

// NewService returns the commands' service on a store that has its secret.
// Codes go by the first sender that reaches the number: CodeReachers
// (WhatsApp) before plain senders (SMS), each group in the order given.
func NewService(store *Store, senders ...CodeSender) (*Service, error) {
	if err := store.keyed(); err != nil {
		return nil, err
	}
	return &Service{store: store, verify: store.Verifier(store.vault), senders: senders}, nil
}

// AddCodeSender adds a network codes can be sent on, after those given.
func (s *Service) AddCodeSender(cs CodeSender) { s.senders = append(s.senders, cs) }

// Verifier returns the service's verifier.
func (s *Service) Verifier() *Verifier { return s.verify }

// invalidNumber is the answer to a command given a number Normalize refuses.
func invalidNumber(err error) string {
	return "That is not a valid phone number (" + err.Error() + "); write it in international form, like +15551234567."
}

// Link answers `link +N`: it sends a code to the number (WhatsApp if it is
// reachable there, else SMS).
func (s *Service) Link(ctx context.Context, owner bridge.Address, raw string) string {
	log := zerolog.Ctx(ctx)
	number, err := phone.Normalize(raw, "")
	if err != nil {
		return invalidNumber(err)
	}
	if current, ok, err := s.store.LinkedOwner(ctx, number); err != nil {
		log.Err(err).Msg("Failed to look up a link")
		return "Could not check that number right now; please try again."
	} else if ok && current == owner {
		return fmt.Sprintf("The number %s is already linked to you.", phone.Mask(number))
	}
	sender, err := s.codeSender(ctx, owner, number)
	if err != nil {
		return err.Error()
	}
	code, err := s.verify.Start(ctx, owner, number)
	if errors.Is(err, ErrRateLimited) {
		return "Too many codes were requested for you or for that number in the last hour; try again later."
	} else if err != nil {
		log.Err(err).Msg("Failed to start a verification")
		return "Could not start linking right now; please try again."
	}
	text := fmt.Sprintf("Your switchboard code is %s. It expires in %d minutes. If you did not ask for it, ignore this message.",
		code, int(CodeLifetime/time.Minute))
	if err = sender.SendCode(ctx, number, text); err != nil {
		log.Warn().Err(err).Str("network", string(sender.Network())).Msg("Failed to send a verification code")
		_ = s.verify.Cancel(ctx, owner)
		return fmt.Sprintf("Could not send the code by %s: %s", sender.Network(), err)
	}
	log.Info().Str("network", string(sender.Network())).Msg("Sent a verification code")
	return fmt.Sprintf("I sent a %d-digit code to %s by %s. Send `verify <code>` within %d minutes to link it; nothing is linked until then.",
		len(code), phone.Mask(number), sender.Network(), int(CodeLifetime/time.Minute))
}

func (s *Service) codeSender(ctx context.Context, owner bridge.Address, number string) (CodeSender, error) {
	// Networks that can check reachability (end-to-end encrypted ones,
	// WhatsApp) first; SMS last.
	ordered := make([]CodeSender, 0, len(s.senders))
	for _, cs := range s.senders {
		if _, ok := cs.(CodeReacher); ok {
			ordered = append(ordered, cs)
		}
	}
	for _, cs := range s.senders {
		if _, ok := cs.(CodeReacher); !ok {
			ordered = append(ordered, cs)
		}
	}
	for _, cs := range ordered {
		if r, ok := cs.(CodeReacher); ok {
			reach, err := r.Reaches(ctx, owner.ID, number)
			if err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("network", string(cs.Network())).Msg("Reachability check failed")
				continue
			}
			if !reach {
				continue
			}
		}
		return cs, nil
	}
	return nil, ErrNoCodeNetwork
}

// Verify answers `verify <code>`.
func (s *Service) Verify(ctx context.Context, owner bridge.Address, code string) string {
	number, err := s.verify.Confirm(ctx, owner, code)
	switch {
	case err == nil:
		zerolog.Ctx(ctx).Info().Msg("Linked a verified number")
		return fmt.Sprintf("Linked %s to you. People who start a chat with that number now reach you here, "+
			"on Matrix (or where you `prefer`). Your number stays hidden unless you say `reveal on`; `unlink` undoes this.", phone.Mask(number))
	case errors.Is(err, ErrWrongCode), errors.Is(err, ErrCodeExpired), errors.Is(err, ErrTooManyTries), errors.Is(err, ErrNoPendingCode):
		return "Not linked: " + err.Error() + "."
	}
	zerolog.Ctx(ctx).Err(err).Msg("Failed to verify a code")
	return "Could not check that code right now; please try again."
}

// Unlink answers `unlink +N`.
func (s *Service) Unlink(ctx context.Context, owner bridge.Address, raw string) string {
	number, err := phone.Normalize(raw, "")
	if err != nil {
		return invalidNumber(err)
	}
	routes, err := s.store.Unlink(ctx, owner, number)
	if errors.Is(err, ErrNotLinked) {
		return fmt.Sprintf("%s is not linked to you.", phone.Mask(number))
	} else if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to unlink")
		return "Could not unlink right now; please try again."
	}
	zerolog.Ctx(ctx).Info().Int("routes", len(routes)).Msg("Unlinked a number")
	return fmt.Sprintf("Unlinked %s, and removed %d route(s) that went through it. Chats started with that number from now on do not reach you.",
		phone.Mask(number), len(routes))
}

// Links answers `links`.
func (s *Service) Links(ctx context.Context, owner bridge.Address) string {
	lines, err := s.Summary(ctx, owner)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to list links")
		return "Could not read your links right now; please try again."
	}
	return strings.Join(lines, "\n")
}

// Summary lists a person's links and preferences, one line each (also for
// `whoami`).
func (s *Service) Summary(ctx context.Context, owner bridge.Address) ([]string, error) {
	links, err := s.store.Links(ctx, owner)
	if err != nil {
		return nil, err
	}
	prefs, err := s.store.Prefs(ctx, owner)
	if err != nil {
		return nil, err
	}
	lines := []string{"Linked addresses: " + owner.String() + " (this account)"}
	for _, l := range links {
		lines = append(lines, fmt.Sprintf("• phone %s, verified %s", phone.Mask(l.Number), l.At.UTC().Format("2006-01-02")))
	}
	if len(links) == 0 {
		lines = append(lines, "• no phone number linked (send `link +N`)")
	}
	prefer := string(prefs.Prefer)
	if prefer == "" {
		prefer = "matrix (default)"
	}
	lines = append(lines, "Preferred network: "+prefer)
	return lines, nil
}

// Prefer answers `prefer matrix|whatsapp|sms`.
func (s *Service) Prefer(ctx context.Context, owner bridge.Address, network string) string {
	n := bridge.NetworkID(strings.ToLower(network))
	if err := s.store.SetPrefer(ctx, owner, n); errors.Is(err, ErrInvalidPreference) {
		return "Usage: prefer matrix|whatsapp|sms"
	} else if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to save preference")
		return "Could not save that setting right now; please try again."
	}
	answer := fmt.Sprintf("Messages for you now go to %s when people reach you by a linked number.", n)
	switch n {
	case bridge.NetworkWhatsApp:
		answer += " When WhatsApp cannot reach your number they stay on Matrix."
	case bridge.NetworkSMS:
		answer += " SMS is not end-to-end encrypted; it is used only when the sender also allowed SMS, otherwise they stay on Matrix."
	}
	links, err := s.store.Links(ctx, owner)
	if err == nil && len(links) == 0 {
		answer += " You have no linked number yet: `link +N` first."
	}
	return answer
}
