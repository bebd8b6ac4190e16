package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// EnvPrefix starts the name of every environment override.
const EnvPrefix = "SWITCHBOARD_"

// EnvName returns the environment variable that overrides a dotted key:
// "sms.twilio.auth_token" → "SWITCHBOARD_SMS_TWILIO_AUTH_TOKEN".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// EnvNames returns every supported environment override, in file order.
// Maps (permissions, retention.networks) cannot be overridden.
func EnvNames() []string {
	leaves := Default().leaves()
	out := make([]string, len(leaves))
	for i, l := range leaves {
		out[i] = EnvName(l.path)
	}
	return out
}

// applyEnv overrides each scalar key whose environment variable is set.
// Booleans accept true/false, 1/0, yes/no and on/off; lists are
// comma-separated.
func (c *Config) applyEnv(env LookupFunc) error {
	if env == nil {
		return nil
	}
	var errs errorList
	for _, l := range c.leaves() {
		name := EnvName(l.path)
		raw, ok := env(name)
		if !ok {
			continue
		}
		if err := setFromEnv(l.v, raw); err != nil {
			errs.add(l.path, fmt.Errorf("environment variable %s: %w", name, err))
		}
	}
	return errs.err()
}

func setFromEnv(v reflect.Value, raw string) error {
	if v.Type() == durationType {
		d, err := ParseDuration(raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, ok := parseBool(raw)
		if !ok {
			return fmt.Errorf("%w: expected true or false, got %q", ErrInvalidValue, raw)
		}
		v.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%w: expected a whole number, got %q", ErrInvalidValue, raw)
		}
		v.SetInt(int64(n))
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("%w: cannot be set from the environment", ErrInvalidValue)
	}
	return nil
}

func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, true
	case "0", "f", "false", "no", "n", "off":
		return false, true
	}
	return false, false
}
