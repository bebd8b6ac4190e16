package safety_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/switchboard-bridge/switchboard/safety"
)

// TestScoreInputHasNoContent: the abuse score is computed from metadata
// alone. Its input type holds counts only — no field can carry a message
// body, media, or a phone number.
func TestScoreInputHasNoContent(t *testing.T) {
	typ := reflect.TypeFor[safety.Input]()
	require.Positive(t, typ.NumField())
	forbidden := []string{"body", "content", "text", "html", "media", "message", "caption", "phone", "number", "attachment"}
	for i := range typ.NumField() {
		f := typ.Field(i)
		require.Equal(t, reflect.Int, f.Type.Kind(), "field %s of safety.Input is %s; only counts are allowed", f.Name, f.Type)
		for _, word := range forbidden {
			require.NotContains(t, strings.ToLower(f.Name), word, "field %s of safety.Input", f.Name)
		}
	}
	// Score takes nothing but the Input.
	fn := reflect.TypeOf(safety.Score)
	require.Equal(t, 1, fn.NumIn())
	require.Equal(t, typ, fn.In(0))
}

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   safety.Input
		want int
	}{
		{"nothing", safety.Input{}, 0},
		{"a normal user", safety.Input{NewChats: 3, Outbound: 40, Unanswered: 4, Regions: 1}, 6 + 4},
		{"few messages: unanswered share not counted yet", safety.Input{Outbound: 5, Unanswered: 5}, 0},
		{"mass mailing nobody answers", safety.Input{NewChats: 20, Outbound: 100, Unanswered: 100, Regions: 6}, 40 + 40 + 20},
		{"four blocks", safety.Input{BlocksReceived: 4}, 100},
		{"five reports", safety.Input{ReportsReceived: 5}, 100},
		{"new chats over the limit", safety.Input{NewChats: 20, NewChatsRefused: 6}, 40 + 60},
		{"bursts and high-cost", safety.Input{Bursts: 2, HighCost: 10, HighCostRefused: 3}, 10 + 30 + 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, safety.Score(tc.in))
		})
	}
	require.Equal(t, "no signals", safety.Input{}.Summary())
	require.Equal(t, "2 new chats, 10 sent (50% unanswered), 1 blocks received", safety.Input{NewChats: 2, Outbound: 10, Unanswered: 5, BlocksReceived: 1}.Summary())
}
