package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/appservice"
)

// TestRegistrationDoublePuppet: appservice.double_puppet adds one
// non-exclusive namespace covering the domain's users (and no other
// domain's), which survives the YAML written by -g; without it the
// registration claims only the bot and the ghosts.
func TestRegistrationDoublePuppet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		on    bool
		users map[string]bool
	}{
		{"off", false, map[string]bool{"@alice:localhost": false}},
		{"on", true, map[string]bool{"@alice:localhost": true, "@alice:localhost.evil": false, "@alice:other": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(minimalYAML))
			require.NoError(t, err)
			require.True(t, cfg.Appservice.MessageStatusEvents, "message_status_events defaults to true")
			require.False(t, cfg.Appservice.DoublePuppet, "double_puppet defaults to false")
			cfg.Appservice.DoublePuppet = tc.on
			path := filepath.Join(t.TempDir(), "registration.yaml")
			require.NoError(t, WriteRegistration(cfg, path))
			var reg appservice.Registration
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, yaml.Unmarshal(data, &reg))
			nonExclusive := 0
			for _, ns := range reg.Namespaces.UserIDs {
				if !ns.Exclusive {
					nonExclusive++
				}
			}
			if tc.on {
				require.Equal(t, 1, nonExclusive)
			} else {
				require.Zero(t, nonExclusive)
			}
			for user, want := range tc.users {
				got := false
				for _, ns := range reg.Namespaces.UserIDs {
					if !ns.Exclusive && regexp.MustCompile(ns.Regex).MatchString(user) {
						got = true
					}
				}
				require.Equal(t, want, got, user)
			}
		})
	}
}
