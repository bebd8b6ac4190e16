package config

import (
	"errors"
	"testing"

	"github.com/switchboard-bridge/switchboard"
)

var sentinels = []error{
	ErrUnknownKey, ErrPlaceholder, ErrInvalidDuration, ErrInvalidPhoneNumber,
	ErrMissing, ErrInvalidValue, ErrSyntax,
}

// FuzzParse checks that no input panics, that every error says which key
// (or that the YAML itself is broken) and wraps a sentinel, and that an
// accepted config validates.
func FuzzParse(f *testing.F) {
	f.Add(switchboard.ExampleConfig)
	f.Add([]byte(minimalYAML))
	f.Add([]byte(fullYAML))
	f.Add([]byte(smsYAML))
	f.Add([]byte(oldConfig))
	f.Add([]byte(""))
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("retention: {networks: {sms: 7d, x: 1}}\n"))
	f.Add([]byte("appservice: {as_token: !!binary aGk=}\n"))
	f.Add([]byte("<<: {logging: {level: info}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("accepted config does not validate: %v", err)
			}
			return
		}
		if cfg != nil {
			t.Fatal("config returned with an error")
		}
		wrapsSentinel := false
		for _, s := range sentinels {
			if errors.Is(err, s) {
				wrapsSentinel = true
			}
		}
		if !wrapsSentinel {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		var ke *KeyError
		if !errors.As(err, &ke) && !errors.Is(err, ErrSyntax) {
			t.Fatalf("error names no key: %v", err)
		}
		for _, ke := range keyErrors(err) {
			if ke.Key == "" {
				t.Fatalf("empty key in %v", err)
			}
		}
	})
}

// FuzzParseDuration checks that durations either parse to a non-negative
// value that formats back to itself, or fail with ErrInvalidDuration.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"0", "30s", "7d", "365d", "1h30m", "-1s", "5 days", "9999999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidDuration) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("%q parsed negative", s)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q: %v does not round-trip (%v, %v)", s, d, back, err)
		}
	})
}
