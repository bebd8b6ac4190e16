package config

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors. Every error returned by [Parse], [Load] and friends wraps
// one of them, and every error about a particular key is a [*KeyError] (or an
// [Errors] list of them) naming that key.
var (
	// ErrUnknownKey: the file has a key that switchboard does not know
	// (usually a typo, or a key from another program's config).
	ErrUnknownKey = errors.New("unknown key")
	// ErrPlaceholder: a value from the example config ("generate",
	// "ACxxxxxxxx", "xxxxxxxx", an example.org URL) was left in place.
	ErrPlaceholder = errors.New("placeholder value must be replaced")
	// ErrInvalidDuration: not a duration like "30s", "168h", "7d" or 0.
	ErrInvalidDuration = errors.New("invalid duration")
	// ErrInvalidPhoneNumber: not a valid phone number in E.164 form.
	ErrInvalidPhoneNumber = errors.New("not a valid E.164 phone number")
	// ErrMissing: a required value is absent or empty.
	ErrMissing = errors.New("required value is missing")
	// ErrInvalidValue: a value of the wrong type or outside the allowed set.
	ErrInvalidValue = errors.New("invalid value")
	// ErrSyntax: the file is not well-formed YAML.
	ErrSyntax = errors.New("invalid YAML")
)

// KeyError is an error about one configuration key. Key is the dotted path
// of the key, with list indexes in brackets and unusual map keys quoted, e.g.
// "sms.twilio.numbers[0]" or `permissions["@alice:example.org"]`.
type KeyError struct {
	Key string
	Err error
}

// Error formats the error as "config: <key>: <reason>".
func (e *KeyError) Error() string {
	return "config: " + e.Key + ": " + e.Err.Error()
}

// Unwrap returns the underlying error, which wraps one of the sentinels.
func (e *KeyError) Unwrap() error { return e.Err }

// Errors is a list of problems found in one configuration, returned when
// there is more than one so that an admin can fix them all at once.
// errors.Is and errors.As see every element.
type Errors []*KeyError

// maxListed is how many problems Errors.Error spells out.
const maxListed = 10

// Error lists the problems on one line, the first few in full.
func (es Errors) Error() string {
	parts := make([]string, 0, min(len(es), maxListed)+1)
	for _, e := range es[:min(len(es), maxListed)] {
		parts = append(parts, e.Key+": "+e.Err.Error())
	}
	if len(es) > maxListed {
		parts = append(parts, "and "+strconv.Itoa(len(es)-maxListed)+" more")
	}
	return "config: " + strings.Join(parts, "; ")
}

// Unwrap returns the elements, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errorList collects KeyErrors while decoding or validating.
type errorList []*KeyError

func (l *errorList) add(key string, err error) {
	*l = append(*l, &KeyError{Key: key, Err: err})
}

// err returns nil, the single *KeyError, or Errors.
func (l errorList) err() error {
	switch len(l) {
	case 0:
		return nil
	case 1:
		return l[0]
	default:
		return Errors(l)
	}
}
