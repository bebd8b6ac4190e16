package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"maunium.net/go/mautrix/appservice"
)

func matchesUserNamespace(reg *appservice.Registration, userID string) bool {
	for _, ns := range reg.Namespaces.UserIDs {
		if regexp.MustCompile(ns.Regex).MatchString(userID) {
			return true
		}
	}
	return false
}

func TestRegistration(t *testing.T) {
	cfg, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	reg := cfg.Registration()

	require.Equal(t, "switchboard", reg.ID)
	require.Equal(t, "http://localhost:29340", reg.URL)
	require.Equal(t, "as-secret-0123456789abcdef0123456789", reg.AppToken)
	require.Equal(t, "hs-secret-0123456789abcdef0123456789", reg.ServerToken)
	require.Equal(t, "switchboard", reg.SenderLocalpart)
	require.NotNil(t, reg.RateLimited)
	require.False(t, *reg.RateLimited)
	require.Len(t, reg.Namespaces.UserIDs, 2)
	for _, ns := range reg.Namespaces.UserIDs {
		require.True(t, ns.Exclusive, ns.Regex)
	}

	for _, tc := range []struct {
		user string
		want bool
	}{
		{"@sb_abc:localhost", true},
		{"@sb_k3f9q2:localhost", true},
		{"@switchboard:localhost", true},
		{"@alice:localhost", false},
		{"@sb_abc:localhost.evil", false},
		{"@sb_abc:elsewhere", false},
		{"@xsb_abc:localhost", false},
		{"@switchboard2:localhost", false},
	} {
		require.Equal(t, tc.want, matchesUserNamespace(reg, tc.user), tc.user)
	}

	// Dots in the domain are literal.
	cfg.Homeserver.Domain = "example.org"
	reg = cfg.Registration()
	require.True(t, matchesUserNamespace(reg, "@sb_x:example.org"))
	require.False(t, matchesUserNamespace(reg, "@sb_x:exampleXorg"))
	require.Equal(t, "@switchboard:example.org", cfg.BotUserID().String())
}

func TestWriteRegistration(t *testing.T) {
	cfg, err := Parse([]byte(minimalYAML))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "registration.yaml")
	require.NoError(t, WriteRegistration(cfg, path))

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	reg, err := appservice.LoadRegistration(path)
	require.NoError(t, err)
	require.Equal(t, cfg.Registration(), reg)
}
