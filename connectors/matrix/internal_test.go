package matrix

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/internal/phone"
	"github.com/switchboard-bridge/switchboard/safety"
)

func TestGhostIDs(t *testing.T) {
	key := deriveKey([]byte("secret"), ghostKeyLabel)
	a := GhostOpaque(key, bridge.NetworkSMS, "+15551234567")
	assert.Len(t, a, opaqueLength)
	assert.Equal(t, a, GhostOpaque(key, bridge.NetworkSMS, "+15551234567"), "stable")
	assert.NotEqual(t, a, GhostOpaque(key, bridge.NetworkWhatsApp, "+15551234567"), "keyed by network")
	assert.NotEqual(t, a, GhostOpaque(deriveKey([]byte("other"), ghostKeyLabel), bridge.NetworkSMS, "+15551234567"), "keyed by secret")
	assert.Equal(t, strings.ToLower(a), a)
	assert.False(t, phone.Contains(a))
	// A phone contact (identity pseudonym) is one ghost on every phone
	// network: the same person, not duplicates.
	pseudonyms, err := identity.NewPseudonyms([]byte("0123456789abcdef0123456789abcdef"))
	require.NoError(t, err)
	contact := pseudonyms.Phone("+14155550123").ID
	assert.Equal(t, GhostOpaque(key, bridge.NetworkSMS, contact), GhostOpaque(key, bridge.NetworkWhatsApp, contact))
	assert.NotEqual(t, GhostOpaque(key, bridge.NetworkSMS, contact), GhostOpaque(key, bridge.NetworkSMS, pseudonyms.Phone("+14155550124").ID))
	for _, r := range a {
		assert.True(t, (r >= 'a' && r <= 'z') || (r >= '2' && r <= '7'), "base32 alphabet: %q", r)
	}

	cfg := config.Default()
	cfg.Identity.Secret = "secret"
	c := &Connector{cfg: ConnectorConfig(cfg), ghostKey: key}
	ghost := c.GhostUserID(bridge.NetworkSMS, "+15551234567")
	assert.Equal(t, id.UserID("@sb_"+a+":localhost"), ghost)
	assert.True(t, c.IsGhost(ghost))
	assert.False(t, c.IsGhost("@sb_:localhost"))
	assert.False(t, c.IsGhost("@alice:localhost"))
	assert.False(t, c.IsGhost(id.UserID("@sb_"+a+":other.example")))
}

func TestSafeDisplayName(t *testing.T) {
	assert.Equal(t, "Alice", SafeDisplayName("  Alice ", "k3f9abcd"))
	assert.Equal(t, "Contact k3f9", SafeDisplayName("+1 555 123 4567", "k3f9abcd"))
	assert.Equal(t, "Contact k3f9", SafeDisplayName("", "k3f9abcd"))
	assert.Equal(t, "Contact k3f9", SafeDisplayName("\x00\n", "k3f9abcd"))
	assert.Equal(t, maxNameLength, len([]rune(SafeDisplayName(strings.Repeat("é", 300), "k3f9abcd"))))
}

func TestToContentMedia(t *testing.T) {
	content := &event.MessageEventContent{
		MsgType: event.MsgImage, Body: "cat.png", URL: "mxc://localhost/abc",
		Info: &event.FileInfo{MimeType: "image/png", Size: 1234, Width: 10, Height: 20},
	}
	out := toContent(content)
	assert.Equal(t, bridge.MsgImage, out.Type)
	assert.Equal(t, &bridge.Media{Ref: "mxc://localhost/abc", MimeType: "image/png", FileName: "cat.png", Size: 1234, Width: 10, Height: 20}, out.Media)
	assert.Empty(t, out.Body, "a file name alone is no caption")

	content = &event.MessageEventContent{
		MsgType: event.MsgAudio, Body: "listen", FileName: "v.ogg", URL: "mxc://localhost/v",
		Info: &event.FileInfo{Duration: 1500}, MSC3245Voice: &event.MSC3245Voice{},
	}
	out = toContent(content)
	assert.Equal(t, bridge.MsgVoice, out.Type)
	assert.Equal(t, "listen", out.Body, "caption")
	assert.Equal(t, "v.ogg", out.Media.FileName)
	assert.Equal(t, 1500*time.Millisecond, out.Media.Duration)

	out = toContent(&event.MessageEventContent{MsgType: event.MsgFile, Body: "no url"})
	assert.Equal(t, bridge.MsgText, out.Type, "media without a file degrades to text")
}

func TestFromContent(t *testing.T) {
	out := fromContent(&bridge.Content{Type: bridge.MsgEmote, HTML: "<b>waves</b>"})
	assert.Equal(t, event.MsgEmote, out.MsgType)
	assert.Equal(t, "**waves**", out.Body, "plain body derived from HTML")
	assert.Equal(t, event.FormatHTML, out.Format)
	out = fromContent(&bridge.Content{Type: bridge.MsgText, Body: "plain"})
	assert.Equal(t, event.MsgText, out.MsgType)
	assert.Empty(t, out.Format)
}

func TestCommands(t *testing.T) {
	cfg := config.Default()
	cfg.Permissions = map[string]string{"localhost": config.PermUser, "@root:localhost": config.PermAdmin, "relay.example": config.PermRelay}
	c := &Connector{cfg: ConnectorConfig(cfg)}
	c.SetCommands(stubCommands(t))
	run := func(sender, text string) string {
		return c.runCommand(t.Context(), &event.Event{Sender: id.UserID(sender), RoomID: "!r:localhost"}, text)
	}
	for _, tc := range []struct {
		sender, text, want string
	}{
		{"@alice:localhost", "help", "whoami"},
		{"@alice:localhost", "HELP", "whoami"},
		{"@alice:localhost", "", "whoami"},
		{"@alice:localhost", "help start", "Usage: start"},
		{"@alice:localhost", "nope", "unknown command, try help"},
		{"@alice:localhost", "start", "Usage: start"},
		{"@alice:localhost", "start 5551234567", "Usage: start"},
		{"@alice:localhost", "start +15551234567", "start is not available yet"},
		{"@alice:localhost", "verify abc", "Usage: verify"},
		{"@alice:localhost", "verify 123456", "verify is not available yet"},
		{"@alice:localhost", "prefer carrier-pigeon", "Usage: prefer"},
		{"@alice:localhost", "sms on", "sms is not available yet"},
		{"@alice:localhost", "retention 7d", "retention is not available yet"},
		{"@alice:localhost", "retention forever", "Usage: retention"},
		{"@alice:localhost", "login whatsapp", "login is not available yet"},
		{"@alice:localhost", "login whatsapp relay", "only available to bridge admins"},
		{"@alice:localhost", "admin status", "only available to bridge admins"},
		{"@root:localhost", "admin status", "admin is not available yet"},
		{"@root:localhost", "admin suspend", "Usage: admin"},
		{"@root:localhost", "login whatsapp relay", "login is not available yet"},
		{"@alice:localhost", "logout whatsapp relay", "only available to bridge admins"},
		{"@alice:localhost", "logout whatsapp now", "Usage: logout"},
		{"@root:localhost", "logout whatsapp relay", "logout is not available yet"},
		{"@bob:relay.example", "whoami", "relay permission"},
		{"@bob:relay.example", "start +15551234567", "needs user permission"},
		{"@eve:elsewhere.example", "help", "not allowed"},
	} {
		got := run(tc.sender, tc.text)
		assert.Contains(t, got, tc.want, "%s: %q", tc.sender, tc.text)
		assert.NotContains(t, got, "5551234567", "answers never echo a number")
	}
}

// stubCommands registers every owner's commands with their real usage,
// levels and argument checks, each answering "<name> is not available
// yet", so TestCommands checks the front end alone: parsing, permission,
// arguments and redaction.
func stubCommands(t *testing.T) *commands.Registry {
	reg := commands.New(commands.Options{})
	all := []commands.Command{StartCommand(nil)}
	all = append(all, (*identity.Service)(nil).Commands()...)
	all = append(all, whatsapp.Commands(nil)...)
	all = append(all, RetentionCommand(nil))
	all = append(all, (*safety.Service)(nil).Commands()...)
	for _, cmd := range all {
		name := cmd.Name
		cmd.Run = func(context.Context, *commands.Request) string { return name + " is not available yet" }
		require.NoError(t, reg.Register(cmd))
	}
	return reg
}

// The name of a chat of its own for a conversation (PhoneGroupOpener):
// the user's display name, else localpart, never a number, at most 25
// characters.
func TestGroupName(t *testing.T) {
	for _, tc := range []struct {
		display string
		user    id.UserID
		want    string
	}{
		{"Bob", "@bob:example.org", "Bob (switchboard)"},
		{"  Bob   Builder ", "@bob:example.org", "Bob Builder (switchboard)"},
		{"", "@bob:example.org", "bob (switchboard)"},
		{"+1 415 555 0142", "@bob:example.org", "bob (switchboard)"},
		{"Bob 415 555 0142", "@14155550142:example.org", "Matrix user (switchboard)"},
		{"Bartholomew", "@b:example.org", "Bartholomew (switchboard)"},
		{"Bartholomew Jones", "@b:example.org", "Bartholome… (switchboard)"},
	} {
		got := groupName(tc.display, tc.user)
		require.Equal(t, tc.want, got, tc.display)
		require.False(t, phone.Contains(got), got)
		require.LessOrEqual(t, len([]rune(got)), maxGroupNameRunes)
	}
}

// FuzzGroupName: whatever the display name and user ID, the name of a
// chat of its own fits WhatsApp's subject limit, ends with the suffix,
// is valid UTF-8 and holds nothing that reads as a phone number.
func FuzzGroupName(f *testing.F) {
	for _, seed := range [][2]string{
		{"Bob", "@bob:example.org"}, {"+1 415 555 0142", "@bob:example.org"}, {"Bob 415 555 0142", "@14155550142:example.org"},
		{"Bartholomew Jones", "@b:example.org"}, {"", ""}, {"0044 20 7183 8750 x", "@=2b44:example.org"}, {"\xff\xfe", "@\xff:x"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, display, user string) {
		got := groupName(display, id.UserID(user))
		if n := utf8.RuneCountInString(got); n > maxGroupNameRunes {
			t.Fatalf("%q has %d runes", got, n)
		}
		if !strings.HasSuffix(got, groupSuffix) || !utf8.ValidString(got) {
			t.Fatalf("%q", got)
		}
		if phone.Contains(got) {
			t.Fatalf("%q reads as a phone number", got)
		}
	})
}
