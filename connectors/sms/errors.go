package sms

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidNumber means a string is not a valid phone number.
	ErrInvalidNumber = errors.New("not a valid phone number")
	// ErrUnassignedNumber means a number is possible but lies in no
	// country's assigned ranges, so sms.allowed_countries cannot allow it:
	// SMS refuses it (other networks may not). It wraps ErrInvalidNumber.
	ErrUnassignedNumber = fmt.Errorf("%w: it is in no country's assigned number ranges", ErrInvalidNumber)
	// ErrCountryNotAllowed means the number's country is not in
	// sms.allowed_countries (toll-fraud guard); nothing is sent.
	ErrCountryNotAllowed = errors.New("SMS to this country is not allowed by sms.allowed_countries")
	// ErrOptedOut means the contact replied STOP; nothing is sent until
	// they reply START.
	ErrOptedOut = errors.New("the recipient opted out of SMS (replied STOP); they must reply START to receive messages again")
	// ErrUnknownChat means a ChatID names no SMS chat this bridge knows.
	ErrUnknownChat = errors.New("unknown SMS chat")
	// ErrPoolNumberGone means a chat's pool number is no longer in
	// sms.twilio.numbers.
	ErrPoolNumberGone = errors.New("the chat's pool number is no longer configured in sms.twilio.numbers")
	// ErrEmptyPool means sms.twilio.numbers is empty.
	ErrEmptyPool = errors.New("sms.twilio.numbers is empty")
	// ErrWebhook means a webhook form is malformed.
	ErrWebhook = errors.New("malformed Twilio webhook")
	// ErrMediaRef means a media reference is not a Twilio media URL of
	// this account.
	ErrMediaRef = errors.New("media reference is not a Twilio media URL of this account")
	// ErrThrottled means Twilio answered 429 (too many requests): the
	// delivery waits in the router's queue for the Retry-After and is sent
	// again, without counting a failed attempt.
	ErrThrottled = errors.New("Twilio is throttling sends (HTTP 429)")
	// errNoRouter means a delivery was not handed over by a router, so
	// the connector records what it sent on its own (sent.go).
	errNoRouter = errors.New("no router records this delivery")
)

// CountryError is ErrCountryNotAllowed with the number's region. It never
// carries the number itself.
type CountryError struct {
	// Region is the ISO 3166 alpha-2 code of the refused number ("" if
	// libphonenumber could not tell).
	Region string
}

func (e *CountryError) Error() string {
	return fmt.Sprintf("%s (number is in %q)", ErrCountryNotAllowed.Error(), e.Region)
}

// Is makes errors.Is(err, ErrCountryNotAllowed) true.
func (e *CountryError) Is(target error) bool { return target == ErrCountryNotAllowed }

// TwilioError is a failed Twilio API call, classified. Code is Twilio's
// error code (https://www.twilio.com/docs/api/errors), Status the HTTP
// status. It never carries a phone number or body: Twilio's message text
// (which can quote the number) is not kept.
type TwilioError struct {
	Status int
	Code   int
}

func (e *TwilioError) Error() string {
	return fmt.Sprintf("twilio: HTTP %d, error %d", e.Status, e.Code)
}
