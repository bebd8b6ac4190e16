package bridge

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A read that a leg change overlaps is never stored, and nothing is used
// while a change is in flight.
func TestLegCacheGenerations(t *testing.T) {
	a := Leg{Network: "a", Chat: "1"}
	b := Leg{Network: "b", Chat: "1"}
	s := &siblings{conv: "cv", legs: []Leg{a, b}}
	cases := []struct {
		name    string
		between func(c *legCache) // between the read (get) and put
		cached  bool
	}{
		{name: "no change", between: func(*legCache) {}, cached: true},
		{name: "change began", between: func(c *legCache) { c.begin() }},
		{name: "change done", between: func(c *legCache) { c.begin(); c.end("other") }},
		{name: "failed change", between: func(c *legCache) { c.begin(); c.end("") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c legCache
			_, gen, ok := c.get(a)
			require.True(t, ok)
			tc.between(&c)
			c.put(s, gen)
			for c.changing > 0 {
				c.end("other")
			}
			got, _, _ := c.get(b)
			require.Equal(t, tc.cached, got == s)
		})
	}
}

// While a change is in flight the cache is bypassed; its end forgets the
// conversation's entries and every entry listing a removed leg.
func TestLegCacheEnd(t *testing.T) {
	a, b, c2 := Leg{Network: "a", Chat: "1"}, Leg{Network: "b", Chat: "1"}, Leg{Network: "c", Chat: "2"}
	one := &siblings{conv: "one", legs: []Leg{a, b}}
	two := &siblings{conv: "two", legs: []Leg{c2}}
	cases := []struct {
		name    string
		conv    ConversationID
		removed []Leg
		left    map[Leg]bool
	}{
		{name: "conversation changed", conv: "one", left: map[Leg]bool{c2: true}},
		{name: "other conversation changed", conv: "two", left: map[Leg]bool{a: true, b: true}},
		{name: "leg removed from a conversation not named", conv: "two", removed: []Leg{b}, left: map[Leg]bool{}},
		{name: "unknown conversation", conv: "", left: map[Leg]bool{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c legCache
			_, gen, _ := c.get(a)
			c.put(one, gen)
			c.put(two, gen)
			c.begin()
			_, _, ok := c.get(a)
			require.False(t, ok, "used during a change")
			c.end(tc.conv, tc.removed...)
			for _, l := range []Leg{a, b, c2} {
				got, _, ok := c.get(l)
				require.True(t, ok)
				require.Equal(t, tc.left[l], got != nil, "%s", l)
			}
		})
	}
}
