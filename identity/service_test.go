package identity

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/internal/testutil/fakeclock"
)

// recordingSender is a CodeSender that keeps what it was asked to send.
type recordingSender struct {
	network bridge.NetworkID
	reach   *bool
	fail    error
	sent    []string // "number|text"
}

func (r *recordingSender) Network() bridge.NetworkID { return r.network }
func (r *recordingSender) SendCode(_ context.Context, number, text string) error {
	if r.fail != nil {
		return r.fail
	}
	r.sent = append(r.sent, number+"|"+text)
	return nil
}

type reachingSender struct{ *recordingSender }

func (r reachingSender) Reaches(context.Context, string, string) (bool, error) { return *r.reach, nil }

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

func lastCode(t *testing.T, s *recordingSender) string {
	t.Helper()
	require.NotEmpty(t, s.sent)
	m := codeRE.FindStringSubmatch(s.sent[len(s.sent)-1])
	require.NotNil(t, m)
	return m[1]
}

func newService(t *testing.T, senders ...CodeSender) (*Service, *Store, *fakeclock.Clock) {
	t.Helper()
	v, clock, _ := newVerifier(t)
	s := v.store
	require.NoError(t, s.SetSecret([]byte("0123456789abcdef0123456789abcdef")))
	svc, err := NewService(s, senders...)
	require.NoError(t, err)
	return svc, s, clock
}

func TestLinkVerifyUnlink(t *testing.T) {
	ctx := context.Background()
	sms := &recordingSender{network: bridge.NetworkSMS}
	svc, store, _ := newService(t, sms)

	answer := svc.Link(ctx, alice, "+1 415 555 0123")
	require.Contains(t, answer, "by sms")
	require.NotContains(t, answer, "4155550123")
	require.Len(t, sms.sent, 1)
	require.True(t, strings.HasPrefix(sms.sent[0], number+"|"), "the code goes to the number itself")
	code := lastCode(t, sms)
	require.NotContains(t, answer, code, "the code is only sent to the number")

	_, linked, err := store.LinkedOwner(ctx, number)
	require.NoError(t, err)
	require.False(t, linked, "nothing is linked before verify")

	require.Contains(t, svc.Verify(ctx, alice, wrong(code)), "not right")
	require.Contains(t, svc.Verify(ctx, bob, code), "no verification code is pending", "a code is bound to who asked")
	require.Contains(t, svc.Verify(ctx, alice, code), "Linked …0123")
	require.Contains(t, svc.Verify(ctx, alice, code), "no verification code is pending", "single use")

	owner, linked, err := store.LinkedOwner(ctx, number)
	require.NoError(t, err)
	require.True(t, linked)
	require.Equal(t, alice, owner)
	links := svc.Links(ctx, alice)
	require.Contains(t, links, "…0123")
	require.NotContains(t, links, "4155550123")

	// The linked phone contact is the same person as alice.
	contact := bridge.Address{Network: bridge.NetworkWhatsApp, ID: string(store.Pseudonyms().Phone(number).ID)}
	key, err := store.PersonKey(ctx, contact)
	require.NoError(t, err)
	require.Equal(t, alice.String(), key)

	require.NoError(t, store.SaveRoute(ctx, bob, number, bridge.NetworkMatrix, "!room:example.org"))
	require.Contains(t, svc.Unlink(ctx, bob, number), "not linked to you")
	require.Contains(t, svc.Unlink(ctx, alice, number), "removed 1 route")
	_, ok, err := store.RouteFor(ctx, bob, number)
	require.NoError(t, err)
	require.False(t, ok, "unlink removes the routes derived from the link")
	_, linked, err = store.LinkedOwner(ctx, number)
	require.NoError(t, err)
	require.False(t, linked)
	key, err = store.PersonKey(ctx, contact)
	require.NoError(t, err)
	require.Equal(t, "phone:"+contact.ID, key)

	consents, err := store.Consents(ctx, alice)
	require.NoError(t, err)
	require.Len(t, consents, 2)
	require.Equal(t, Consent{Kind: ConsentLink, Value: true, At: consents[0].At}, consents[0])
	require.Equal(t, Consent{Kind: ConsentLink, Value: false, At: consents[1].At}, consents[1])
}

func TestLinkRefusals(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, svc *Service, sms *recordingSender, clock *fakeclock.Clock)
	}{
		{"invalid number", func(t *testing.T, svc *Service, sms *recordingSender, _ *fakeclock.Clock) {
			require.Contains(t, svc.Link(ctx, alice, "+1555"), "not a valid phone number")
			require.Empty(t, sms.sent)
		}},
		{"expired code", func(t *testing.T, svc *Service, sms *recordingSender, clock *fakeclock.Clock) {
			svc.Link(ctx, alice, number)
			clock.Advance(CodeLifetime)
			require.Contains(t, svc.Verify(ctx, alice, lastCode(t, sms)), "expired")
		}},
		{"too many tries", func(t *testing.T, svc *Service, sms *recordingSender, _ *fakeclock.Clock) {
			svc.Link(ctx, alice, number)
			code := lastCode(t, sms)
			for i := 0; i < MaxTries; i++ {
				svc.Verify(ctx, alice, wrong(code))
			}
			require.Contains(t, svc.Verify(ctx, alice, code), "too many wrong codes")
		}},
		{"rate limited", func(t *testing.T, svc *Service, sms *recordingSender, _ *fakeclock.Clock) {
			for i := 0; i < CodesPerUserHour; i++ {
				require.Contains(t, svc.Link(ctx, alice, number), "I sent")
			}
			require.Contains(t, svc.Link(ctx, alice, number), "Too many codes")
			require.Len(t, sms.sent, CodesPerUserHour)
		}},
		{"send failure leaves nothing pending", func(t *testing.T, svc *Service, sms *recordingSender, _ *fakeclock.Clock) {
			sms.fail = errors.New("carrier down")
			require.Contains(t, svc.Link(ctx, alice, number), "Could not send the code by sms")
			require.Contains(t, svc.Verify(ctx, alice, "123456"), "no verification code is pending")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sms := &recordingSender{network: bridge.NetworkSMS}
			svc, _, clock := newService(t, sms)
			tc.run(t, svc, sms, clock)
		})
	}
}

// TestCodeGoesByWhatsAppWhenReachable: WhatsApp first, SMS when WhatsApp
// does not reach the number.
func TestCodeGoesByWhatsAppWhenReachable(t *testing.T) {
	ctx := context.Background()
	for _, onWA := range []bool{true, false} {
		reach := onWA
		wa := reachingSender{&recordingSender{network: bridge.NetworkWhatsApp, reach: &reach}}
		sms := &recordingSender{network: bridge.NetworkSMS}
		svc, _, _ := newService(t, sms, wa) // registration order does not matter
		answer := svc.Link(ctx, alice, number)
		if onWA {
			require.Contains(t, answer, "by whatsapp")
			require.Len(t, wa.sent, 1)
			require.Empty(t, sms.sent)
		} else {
			require.Contains(t, answer, "by sms")
			require.Empty(t, wa.sent)
			require.Len(t, sms.sent, 1)
		}
	}
	svc, _, _ := newService(t)
	require.Contains(t, svc.Link(ctx, alice, number), "no enabled network can send a code")
}

func TestRevealedNumber(t *testing.T) {
	ctx := context.Background()
	sms := &recordingSender{network: bridge.NetworkSMS}
	svc, store, _ := newService(t, sms)
	svc.Link(ctx, alice, number)
	svc.Verify(ctx, alice, lastCode(t, sms))
	pseudonym := string(store.Pseudonyms().Phone(number).ID)
	_, ok, err := store.RevealedNumber(ctx, pseudonym)
	require.NoError(t, err)
	require.False(t, ok, "hidden by default")
	require.NoError(t, store.SetReveal(ctx, alice, true))
	got, ok, err := store.RevealedNumber(ctx, pseudonym)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, number, got)
}

// TestLinkWrittenForms: link and unlink read a number however it is
// written or pasted, and every form names the same number; a malformed
// one gets an answer naming the problem, without echoing it.
func TestLinkWrittenForms(t *testing.T) {
	ctx := context.Background()
	for _, written := range []string{
		"+1 (415) 555-0123", "+1.415.555.0123", "001 415 555 0123", "＋１ ４１５ ５５５ ０１２３",
		"\u202a+1 415-555-0123\u202c", "+1\u00a0415\u00a0555\u00a00123",
	} {
		sms := &recordingSender{network: bridge.NetworkSMS}
		svc, store, _ := newService(t, sms)
		require.Contains(t, svc.Link(ctx, alice, written), "by sms", "%q", written)
		require.True(t, strings.HasPrefix(sms.sent[0], number+"|"), "%q reaches %s", written, number)
		require.Contains(t, svc.Verify(ctx, alice, lastCode(t, sms)), "Linked …0123")
		_, linked, err := store.LinkedOwner(ctx, number)
		require.NoError(t, err)
		require.True(t, linked, "%q", written)
		require.Contains(t, svc.Unlink(ctx, alice, written), "Unlinked …0123", "%q", written)
	}
	sms := &recordingSender{network: bridge.NetworkSMS}
	svc, _, _ := newService(t, sms)
	for written, problem := range map[string]string{
		"(415) 555-0123":          "must start with + and the country code",
		"+1 415 CALL NOW":         "letters",
		"+1 415":                  "too short",
		"+1 415 555 0123 4567 89": "too long",
	} {
		answer := svc.Link(ctx, alice, written)
		require.Contains(t, answer, "not a valid phone number", "%q", written)
		require.Contains(t, answer, problem, "%q", written)
		require.NotContains(t, answer, written)
		require.Contains(t, svc.Unlink(ctx, alice, written), problem, "%q", written)
	}
	require.Empty(t, sms.sent)
}
