package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a non-negative time.Duration that reads from YAML as a Go
// duration ("30s", "1h30m", "168h"), a number of days ("7d", "365d") or 0.
type Duration time.Duration

const day = 24 * time.Hour

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d the way it would be written in the config file, in the
// largest unit that divides it: "0", "7d", "5h", "10m", "30s", else Go's
// own format ("1.5s").
func (d Duration) String() string {
	td := time.Duration(d)
	switch {
	case td == 0:
		return "0"
	case td%day == 0:
		return strconv.FormatInt(int64(td/day), 10) + "d"
	case td%time.Hour == 0:
		return strconv.FormatInt(int64(td/time.Hour), 10) + "h"
	case td%time.Minute == 0:
		return strconv.FormatInt(int64(td/time.Minute), 10) + "m"
	case td%time.Second == 0:
		return strconv.FormatInt(int64(td/time.Second), 10) + "s"
	default:
		return td.String()
	}
}

// ParseDuration parses a config duration: a Go duration, a whole number of
// days with the suffix "d", or "0". Negative values are refused. The error
// wraps [ErrInvalidDuration].
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalidDuration)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || strings.HasPrefix(days, "+") {
			return 0, fmt.Errorf("%w: %q (use e.g. 30s, 10m, 24h, 7d or 0)", ErrInvalidDuration, s)
		}
		if n > math.MaxInt64/int64(day) {
			return 0, fmt.Errorf("%w: %q is too long", ErrInvalidDuration, s)
		}
		return Duration(time.Duration(n) * day), nil
	}
	td, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q (use e.g. 30s, 10m, 24h, 7d or 0)", ErrInvalidDuration, s)
	}
	if td < 0 {
		return 0, fmt.Errorf("%w: %q is negative", ErrInvalidDuration, s)
	}
	return Duration(td), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%w: expected a duration like 24h or 7d, got %s", ErrInvalidDuration, kindName(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler, writing the form [Duration.String]
// gives.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
