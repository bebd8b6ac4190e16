package matrix_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/bridge/bridgetest"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/identity"
)

// phoneNet is a loopback connector posing as a phone network; it records
// which numbers it opened chats for.
type phoneNet struct {
	*bridgetest.Loopback
	mu     sync.Mutex
	opened map[string]bool
}

func (p *phoneNet) OpenPhoneChat(_ context.Context, _ string, phone string, _ bridge.ConversationID) (bridge.ChatID, bridge.Sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opened[phone] = true
	return bridge.ChatID(string(p.Network()) + "-" + phone[1:]), bridge.Sender{ID: "ph_" + bridge.UserID(strconv.Itoa(len(p.opened)))}, nil
}

func (p *phoneNet) didOpen(phone string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opened[phone]
}

// reachNet is a phoneNet that can tell whether it reaches a number
// (WhatsApp's IsOnWhatsApp).
type reachNet struct {
	*phoneNet
	reach map[string]bool
}

func (p *reachNet) Reaches(_ context.Context, _ string, phone string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reach[phone], nil
}

// TestStartRoutingTable runs `start` (NewRouterStarter, through the real
// router and Dendrite) over every combination of linked or not × on
// WhatsApp or not × the sender's `sms` × the linked person's `prefer`, and
// checks where the chat went: a native room with the linked account, or a
// portal on the network identity.Decide picks for that state — and that no
// other network was touched.
func TestStartRoutingTable(t *testing.T) {
	wa := &reachNet{phoneNet: &phoneNet{Loopback: bridgetest.NewLoopback(bridge.NetworkWhatsApp), opened: map[string]bool{}}, reach: map[string]bool{}}
	sms := &phoneNet{Loopback: bridgetest.NewLoopback(bridge.NetworkSMS), opened: map[string]bool{}}
	e := startWithDendriteAnd(t, []bridge.Connector{wa, sms})
	ctx := zerolog.New(e.logs).WithContext(context.Background())
	store := identity.New(e.db)
	require.NoError(t, store.Upgrade(ctx, zerolog.Nop()))
	require.NoError(t, store.SetSecret([]byte("0123456789abcdef0123456789abcdef")))
	e.conn.SetIdentity(store)
	verifier := store.Verifier(store.Vault())
	start := matrix.NewRouterStarter(e.router, e.conn, matrix.StartOptions{})
	alice := e.newUser(t, "alice")
	requester := matrix.UserAddress(idOf(alice))

	n := 0
	for _, linked := range []bool{false, true} {
		for _, onWA := range []bool{false, true} {
			for _, senderSMS := range []bool{false, true} {
				prefs := []bridge.NetworkID{""}
				if linked {
					prefs = []bridge.NetworkID{"", bridge.NetworkMatrix, bridge.NetworkWhatsApp, bridge.NetworkSMS}
				}
				for _, prefer := range prefs {
					n++
					number := fmt.Sprintf("+1415555%04d", 1000+n)
					in := identity.RouteInput{Linked: linked, Prefer: prefer, SMSAvailable: true, SenderSMS: senderSMS}
					if onWA {
						in.Reachable = []bridge.NetworkID{bridge.NetworkWhatsApp}
					}
					want := identity.Decide(in)
					t.Run(fmt.Sprintf("linked=%v/whatsapp=%v/sms=%v/prefer=%s", linked, onWA, senderSMS, prefer), func(t *testing.T) {
						require.NoError(t, store.SetSMS(ctx, requester, senderSMS))
						wa.mu.Lock()
						wa.reach[number] = onWA
						wa.mu.Unlock()
						var owner *user
						if linked {
							owner = e.newUser(t, "owner"+strconv.Itoa(n))
							addr := matrix.UserAddress(idOf(owner))
							code, err := verifier.Start(ctx, addr, number)
							require.NoError(t, err)
							_, err = verifier.Confirm(ctx, addr, code)
							require.NoError(t, err)
							if prefer != "" {
								require.NoError(t, store.SetPrefer(ctx, addr, prefer))
							}
						}
						res, err := start(ctx, matrix.StartRequest{User: idOf(alice), Phone: number})
						if want.Err != nil {
							require.ErrorIs(t, err, want.Err)
							require.False(t, wa.didOpen(number) || sms.didOpen(number), "a refused start opens nothing")
							return
						}
						require.NoError(t, err)
						require.Equal(t, want.Network, res.Network)
						require.Equal(t, want.Native, res.Native)
						require.Equal(t, want.Network == bridge.NetworkWhatsApp, wa.didOpen(number), "whatsapp touched")
						require.Equal(t, want.Network == bridge.NetworkSMS, sms.didOpen(number), "sms touched")
						if want.Native {
							require.True(t, res.Encrypted)
							// The linked account can join; the bot already left.
							require.Equal(t, 200, owner.do(t, "POST", "/join/"+string(res.Room), map[string]any{}, nil))
							var members struct {
								Joined map[string]any `json:"joined"`
							}
							owner.do(t, "GET", "/rooms/"+string(res.Room)+"/joined_members", nil, &members)
							require.Contains(t, members.Joined, owner.id)
							require.NotContains(t, members.Joined, e.conn.BotUserID().String(), "the bot is not in a native room")
							require.Len(t, members.Joined, 1, "alice is invited, nobody else is there")
						} else {
							conv, err := e.router.ConversationOf(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(res.Room)})
							require.NoError(t, err)
							legs, err := e.router.Legs(ctx, conv)
							require.NoError(t, err)
							require.Len(t, legs, 2)
						}
					})
				}
			}
		}
	}
	require.Equal(t, 4+16, n)
}

// takenNet is a phone network with one chat per number for everyone (the
// WhatsApp relay account's one-to-one chats), listing it for `start`.
type takenNet struct {
	*phoneNet
	groups []string // chat names OpenPhoneGroup was asked for
}

func (p *takenNet) Reaches(context.Context, string, string) (bool, error) { return true, nil }

func (p *takenNet) ChatsReaching(_ context.Context, phone string) ([]bridge.ChatID, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []bridge.ChatID
	if p.opened[phone] {
		out = append(out, bridge.ChatID(string(p.Network())+"-"+phone[1:]))
	}
	for i := range p.groups {
		out = append(out, bridge.ChatID("group-"+strconv.Itoa(i+1)))
	}
	return out, nil
}

// groupNet is a takenNet that opens a group of its own for a conversation
// whose number's chat is taken (bridge.PhoneGroupOpener).
type groupNet struct{ *takenNet }

var _ bridge.PhoneGroupOpener = groupNet{}

func (p groupNet) OpenPhoneGroup(_ context.Context, _ string, _ string, _ bridge.ConversationID, name string) (bridge.ChatID, bridge.Sender, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.groups = append(p.groups, name)
	return bridge.ChatID("group-" + strconv.Itoa(len(p.groups))), bridge.Sender{ID: "ph_group"}, nil
}

// When the one chat a network has with a number is in alice's
// conversation, bob's `start` of that number gets a portal on a group of
// its own if the network is a PhoneGroupOpener (named after bob, without
// a number), and each user's next `start` returns to their own portal;
// without the capability bob is refused with ErrChatTaken.
func TestStartSecondUserGetsGroup(t *testing.T) {
	const number = "+14155550142"
	for _, tc := range []struct {
		name   string
		groups bool
	}{{"group opener", true}, {"one chat per number", false}} {
		t.Run(tc.name, func(t *testing.T) {
			taken := &takenNet{phoneNet: &phoneNet{Loopback: bridgetest.NewLoopback(bridge.NetworkWhatsApp), opened: map[string]bool{}}}
			var conn bridge.Connector = taken
			if tc.groups {
				conn = groupNet{taken}
			}
			e := startWithDendriteAnd(t, []bridge.Connector{conn})
			ctx := zerolog.New(e.logs).WithContext(context.Background())
			start := matrix.NewRouterStarter(e.router, e.conn, matrix.StartOptions{})
			alice, bob := e.newUser(t, "alice"), e.newUser(t, "bob")
			require.Equal(t, http.StatusOK, bob.do(t, http.MethodPut, "/profile/"+url.PathEscape(bob.id)+"/displayname", map[string]any{"displayname": "Bob Builder"}, nil))

			first, err := start(ctx, matrix.StartRequest{User: idOf(alice), Phone: number})
			require.NoError(t, err)
			require.False(t, first.Group)
			second, err := start(ctx, matrix.StartRequest{User: idOf(bob), Phone: number})
			if !tc.groups {
				require.ErrorIs(t, err, matrix.ErrChatTaken)
				return
			}
			require.NoError(t, err)
			require.True(t, second.Group)
			require.False(t, second.Existing)
			require.Equal(t, bridge.NetworkWhatsApp, second.Network)
			require.NotEqual(t, first.Room, second.Room)
			require.Equal(t, []string{"Bob Builder (switchboard)"}, taken.groups)
			conv, err := e.router.ConversationOf(ctx, bridge.Leg{Network: bridge.NetworkMatrix, Chat: bridge.ChatID(second.Room)})
			require.NoError(t, err)
			legs, err := e.router.Legs(ctx, conv)
			require.NoError(t, err)
			require.Contains(t, legs, bridge.Leg{Network: bridge.NetworkWhatsApp, Chat: "group-1"})
			require.Equal(t, "invite", bob.membership(t, string(second.Room), bob.id))

			for _, again := range []struct {
				u    *user
				room string
			}{{bob, string(second.Room)}, {alice, string(first.Room)}} {
				res, err := start(ctx, matrix.StartRequest{User: idOf(again.u), Phone: number})
				require.NoError(t, err)
				require.True(t, res.Existing)
				require.Equal(t, again.room, string(res.Room))
			}
			require.Len(t, taken.groups, 1, "returning opens no second group")
		})
	}
}

// TestStartWrittenForms runs `start` (the registry's command, as the bot
// runs it) with a number written and pasted the ways people do: each form
// reaches the conversation its E.164 form started, and the network is
// asked to open only that one chat; malformed forms get an answer naming
// the problem (never echoing the input) and open nothing.
func TestStartWrittenForms(t *testing.T) {
	const e164 = "+12025550143"
	wa := &reachNet{phoneNet: &phoneNet{Loopback: bridgetest.NewLoopback(bridge.NetworkWhatsApp), opened: map[string]bool{}},
		reach: map[string]bool{e164: true}}
	e := startWithDendriteAnd(t, []bridge.Connector{wa})
	ctx := zerolog.New(e.logs).WithContext(context.Background())
	reg := commands.New(commands.Options{})
	require.NoError(t, reg.Register(matrix.StartCommand(matrix.NewRouterStarter(e.router, e.conn, matrix.StartOptions{}))))
	alice := e.newUser(t, "alice")
	ask := func(text string) string {
		name, args, line := commands.Parse(text)
		return reg.Run(ctx, &commands.Request{User: matrix.UserAddress(idOf(alice)), Level: commands.LevelUser,
			Room: "!dm:localhost", Name: name, Args: args, Line: line}).Text
	}
	first := ask("start " + e164)
	require.Contains(t, first, "Started a chat with that number: https://matrix.to/#/")
	link := first[strings.Index(first, "https://"):]
	link = link[:strings.Index(link, " ")]

	for _, form := range []string{
		e164,
		"+1 (202) 555-0143",
		"+1 202 555 0143",
		"+1-202-555-0143",
		"+1.202.555.0143",
		"+1 202/555/0143",
		"  +1 (202) 555 - 0143  ",
		"001 202 555 0143",
		"0012025550143",
		"+1\u00a0202\u00a0555\u00a00143", // no-break spaces
		"\u202a+1 (202) 555-0143\u202c",  // bidi marks from a contact card
		"\u2066+1\u2009202\u2009555\u20090143\u2069",                                  // isolates and thin spaces
		"+1 202 555 0143\u200b",                                                       // zero-width space
		"\uff0b\uff11 \uff12\uff10\uff12 \uff15\uff15\uff15 \uff10\uff11\uff14\uff13", // fullwidth
	} {
		t.Run(strings.ToValidUTF8(form, "?"), func(t *testing.T) {
			answer := ask("start " + form)
			require.Contains(t, answer, "You already have a chat with that number: "+link, "same conversation")
		})
	}
	for _, tc := range []struct{ form, problem string }{
		{"202 555 0143", "must start with + and the country code"},
		{"2025550143", "must start with + and the country code"},
		{"+1 202 555 014a", "has letters in it"},
		{"+1 202 555 0143 ext 5", "has letters in it"},
		{"+1 202 555 0143 #", "characters that are not part of a phone number"},
		{"1+202 555 0143", "a + may only come first"},
		{"+1 202", "too short"},
		{"+1 202 555 0143 0143 0143", "too long"},
		{"+999 555 0143", "country code is not one in use"},
	} {
		t.Run("malformed "+tc.form, func(t *testing.T) {
			answer := ask("start " + tc.form)
			require.Contains(t, answer, tc.problem)
			require.Contains(t, answer, "Usage: start")
			require.NotContains(t, answer, "0143", "the input is not echoed")
			require.NotContains(t, answer, "Started")
		})
	}
	wa.mu.Lock()
	defer wa.mu.Unlock()
	require.Equal(t, map[string]bool{e164: true}, wa.opened, "only the E.164 form's chat was opened")
}
