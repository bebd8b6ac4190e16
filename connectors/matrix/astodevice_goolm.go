//go:build goolm

package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

var _ transactionCryptor = (*olmCryptor)(nil)

// feed hands a transaction's encryption traffic to the machine in the
// order /sync gives it (device lists, to-device events, one-time-key
// counts). Only to-device events whose to_user_id and to_device_id name
// this very device are used: the homeserver addresses each to one device,
// and an event for another device (or none) is dropped.
func (o *olmCryptor) feed(ctx context.Context, t *cryptoTraffic) error {
	run := o.run.Load()
	if run == nil {
		return ErrEncryptionNotReady
	}
	mach, me, device := run.mach, run.cli.UserID, run.cli.DeviceID
	log := zerolog.Ctx(ctx).With().Str("component", "crypto").Logger()
	// A key request is answered in the background; it must outlive the
	// transaction's request.
	ctx = context.WithoutCancel(ctx)
	if t.DeviceLists != nil {
		mach.HandleDeviceLists(ctx, t.DeviceLists, "")
	}
	for _, raw := range t.ToDevice {
		var evt event.Event
		if err := json.Unmarshal(raw, &evt); err != nil {
			log.Warn().Err(err).Msg("Skipping a malformed to-device event")
			continue
		}
		if evt.ToUserID != me || evt.ToDeviceID != device {
			log.Warn().Stringer("to_user_id", evt.ToUserID).Stringer("to_device_id", evt.ToDeviceID).
				Msg("Dropping a to-device event addressed to another device")
			continue
		}
		evt.Type.Class = event.ToDeviceEventType
		evt.Mautrix.EventSource = event.SourceToDevice
		if err := evt.Content.ParseRaw(evt.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
			log.Warn().Err(err).Str("event_type", evt.Type.Type).Msg("Skipping a to-device event whose content does not parse")
			continue
		}
		mach.HandleToDeviceEvent(ctx, &evt)
	}
	if count, ok := t.OTKCounts[device]; ok {
		count.UserID, count.DeviceID = me, device
		mach.HandleOTKCounts(ctx, &count)
	}
	if t.FallbackKeys != nil {
		// mautrix v0.26 uploads no fallback key, so there is none to
		// replace; the types are only looked at.
		log.Trace().Int("unused_fallback_key_types", len(t.FallbackKeys[device])).Msg("Unused fallback key types")
	}
	mach.MarkOlmHashSavePoint(ctx)
	return nil
}

func (o *olmCryptor) memberChanged(ctx context.Context, evt *event.Event) {
	if run := o.run.Load(); run != nil {
		run.mach.HandleMemberEvent(ctx, evt)
	}
}

// createDevice creates the bot's device through the appservice device API
// (MSC4190: PUT /_matrix/client/v3/devices/{deviceId} with the as_token),
// reusing the stored device ID. It reports false, without error, when the
// homeserver does not offer the API (404 or 405 there): the caller logs in
// with m.login.application_service instead.
func createDevice(ctx context.Context, cli *mautrix.Client, device id.DeviceID, name string) (bool, error) {
	err := cli.CreateDeviceMSC4190(ctx, device, name)
	if err == nil {
		return true, nil
	}
	var httpErr mautrix.HTTPError
	if errors.As(err, &httpErr) && httpErr.Response != nil {
		switch httpErr.Response.StatusCode {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			zerolog.Ctx(ctx).Warn().Err(err).Msg("The homeserver does not create appservice devices (MSC4190); logging in with m.login.application_service")
			return false, nil
		}
	}
	return false, classify("create bot device (MSC4190)", err)
}
