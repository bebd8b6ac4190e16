package sms

import (
	"context"
	"errors"

	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard-bridge/switchboard/identity"
)

var _ identity.CodeSender = (*Connector)(nil)

// SendCode sends a one-off system text (a verification code) from the
// first pool number, outside any conversation: it is not queued, stored or
// logged. allowed_countries and opt-outs apply as to any SMS.
func (c *Connector) SendCode(ctx context.Context, number, text string) error {
	if len(c.poolOrder) == 0 {
		return ErrEmptyPool
	}
	return c.sendSystem(ctx, number, c.pool[c.poolOrder[0]], text)
}

// sendSystem sends a one-off text from a pool number, outside any
// conversation, unqueued and unstored.
func (c *Connector) sendSystem(ctx context.Context, number, from, text string) error {
	to, region, err := readNumber(number)
	if err != nil {
		return err
	}
	if err = checkCountry(region, c.cfg.AllowedCountries); err != nil {
		c.metrics.messages.WithLabelValues("out", "refused").Inc()
		return err
	}
	hash := c.keys.contactHash(to)
	if out, err := c.optedOut(ctx, hash); err != nil {
		return err
	} else if out {
		c.metrics.messages.WithLabelValues("out", "refused").Inc()
		return ErrOptedOut
	}
	params := &openapi.CreateMessageParams{}
	params.SetTo(to).SetFrom(from).SetBody(text)
	resp, err := c.twilio.Api.CreateMessage(params)
	if err != nil {
		c.metrics.messages.WithLabelValues("out", "error").Inc()
		return c.classify(ctx, hash, err)
	}
	if resp.Sid == nil || *resp.Sid == "" {
		return errors.New("sms: Twilio answered without a MessageSid")
	}
	enc, n := Segments(text)
	c.metrics.segments.WithLabelValues(string(enc)).Add(float64(n))
	c.metrics.messages.WithLabelValues("out", "sent").Inc()
	c.log.Debug().Str("message_sid", *resp.Sid).Msg("Sent a system SMS")
	return nil
}
