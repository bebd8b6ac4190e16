package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBoundsRefused: every numeric key has bounds, and a value outside
// them is refused with the key named (a workers: 100000000 grew the
// process past 23 GB; poll_interval: 1ns spun on the database).
func TestBoundsRefused(t *testing.T) {
	long := strings.Repeat("a", MinTokenLength)
	for _, tc := range []struct {
		name, key, value string
	}{
		{"huge workers", "delivery.workers", "100000000"},
		{"zero workers", "delivery.workers", "0"},
		{"huge max_attempts", "delivery.max_attempts", "1000000"},
		{"zero max_attempts", "delivery.max_attempts", "0"},
		{"nanosecond poll interval", "delivery.poll_interval", "1ns"},
		{"hour poll interval", "delivery.poll_interval", "1h"},
		{"short lease", "delivery.lease", "1ms"},
		{"long lease", "delivery.lease", "30d"},
		{"tiny retry_base", "delivery.retry_base", "1ns"},
		{"long retry_base", "delivery.retry_base", "2h"},
		{"long retry_max", "delivery.retry_max", "365d"},
		{"many open conns", "database.max_open_conns", "100000"},
		{"many idle conns", "database.max_idle_conns", "100000"},
		{"negative idle conns", "database.max_idle_conns", "-1"},
		{"huge chats per hour", "safety.new_chats_per_hour", "2000000000"},
		{"huge sender limit", "safety.sender_messages_per_minute", "2000000000"},
		{"huge conversation limit", "safety.conversation_messages_per_minute", "2000000000"},
		{"huge inbound limit", "safety.inbound_messages_per_minute", "2000000000"},
		{"huge high cost limit", "safety.high_cost_per_hour", "2000000000"},
		{"huge suspend score", "safety.suspend_score", "2000000000"},
		{"long sms pacing", "safety.sms_segment_interval", "2h"},
		{"second signal window", "safety.signal_window", "1s"},
		{"long signal window", "safety.signal_window", "400d"},
		{"nanosecond retention", "retention.default", "1ns"},
		{"millennium retention", "retention.default", "1000000h"},
		{"nanosecond metadata", "retention.metadata", "1ns"},
		{"nanosecond network retention", "retention.networks.sms", "1ns"},
		{"short identity secret", "identity.secret", "fifteen-chars!!"},
		{"short as_token", "appservice.as_token", "a"},
		{"short hs_token", "appservice.hs_token", strings.Repeat("h", MinTokenLength-1)},
		{"hs_token equal to as_token", "appservice.hs_token", "as-secret-0123456789abcdef0123456789"},
		{"long login timeout", "whatsapp.login_timeout", "2h"},
		{"no backfill messages", "whatsapp.backfill.max_messages_per_chat", "0"},
		{"huge backfill", "whatsapp.backfill.max_messages_per_chat", "2000000000"},
		{"negative backfill conversations", "whatsapp.backfill.max_conversations", "-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := set(t, minimalYAML, tc.key, tc.value)
			if tc.key == "appservice.as_token" {
				doc = set(t, doc, "appservice.hs_token", long)
			}
			_, err := Parse([]byte(doc))
			requireKeyError(t, err, tc.key, ErrInvalidValue)
		})
	}
	t.Run("pacing override", func(t *testing.T) {
		_, err := Parse([]byte(set(t, minimalYAML, "safety.sms_number_intervals", `{"+14155550100": 2h}`)))
		requireKeyError(t, err, `safety.sms_number_intervals["+14155550100"]`, ErrInvalidValue)
	})
}

// TestBoundsAccepted: the edges of each range, and 0 where it means "off"
// or "keep", load.
func TestBoundsAccepted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pairs []string
	}{
		{"lowest", []string{"delivery.workers", "1", "delivery.max_attempts", "1", "delivery.poll_interval", "100ms",
			"delivery.lease", "5s", "delivery.retry_base", "10ms", "delivery.retry_max", "10ms", "database.max_open_conns", "0",
			"database.max_idle_conns", "0", "safety.sms_segment_interval", "0", "safety.suspend_score", "0", "safety.signal_window", "0",
			"retention.default", "0", "retention.metadata", "1m", "retention.networks.sms", "0"}},
		{"highest", []string{"delivery.workers", "256", "delivery.max_attempts", "1000", "delivery.poll_interval", "5m",
			"delivery.lease", "1h", "delivery.retry_base", "1h", "delivery.retry_max", "24h", "database.max_open_conns", "1000",
			"database.max_idle_conns", "1000", "safety.sms_segment_interval", "10m", "safety.suspend_score", "1000000",
			"safety.signal_window", "365d", "retention.default", "36500d", "retention.networks.whatsapp", "36500d"}},
		{"tokens of exactly the minimum", []string{"appservice.as_token", strings.Repeat("a", MinTokenLength), "appservice.hs_token", strings.Repeat("h", MinTokenLength)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(set(t, minimalYAML, tc.pairs...)))
			require.NoError(t, err)
		})
	}
}

// TestGeneratedTokensValidate: what LoadOrCreate generates satisfies the
// token rule.
func TestGeneratedTokensValidate(t *testing.T) {
	as, hs := randomAlnum(64), randomAlnum(64)
	require.GreaterOrEqual(t, len(as), MinTokenLength)
	require.NotEqual(t, as, hs)
	_, err := Parse([]byte(set(t, minimalYAML, "appservice.as_token", as, "appservice.hs_token", hs)))
	require.NoError(t, err)
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		perms string
		want  []string
	}{
		{"default", "", nil},
		{"star admin", `{"*": admin}`, []string{`permissions["*"]`}},
		{"server admin", `{"*": relay, "example.net": admin}`, nil},
		{"user admin", `{"@me:example.net": admin}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := minimalYAML
			if tc.perms != "" {
				doc = set(t, doc, "permissions", tc.perms)
			}
			cfg, err := Parse([]byte(doc))
			require.NoError(t, err)
			var keys []string
			for _, w := range cfg.Warnings() {
				keys = append(keys, w.Key)
				require.NotEmpty(t, w.Message)
			}
			require.Equal(t, tc.want, keys)
		})
	}
}
