package matrix

import (
	"context"
	"sync"

	"github.com/rs/zerolog"
	"github.com/skip2/go-qrcode"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/commands"
)

// StepScreen is what StepReplier draws steps with: the bot's images,
// redactions and notices. *Connector satisfies it.
type StepScreen interface {
	SendImage(ctx context.Context, room id.RoomID, data []byte, fileName, caption string) (id.EventID, error)
	Redact(ctx context.Context, room id.RoomID, evt id.EventID, reason string) error
	NotifyRoom(ctx context.Context, room id.RoomID, text string)
}

var _ StepScreen = (*Connector)(nil)

// StepReplier returns the commands.Request.Reply of a command sent in
// room: a QR step becomes a PNG image that replaces the last one (which is
// redacted once the new one is there), every other step a notice (with
// phone numbers redacted), sent after the QR still shown is redacted.
func StepReplier(screen StepScreen, room id.RoomID) func(context.Context, commands.Step) {
	var (
		mu   sync.Mutex
		last id.EventID
	)
	redactLast := func(ctx context.Context) {
		if last == "" {
			return
		}
		if err := screen.Redact(ctx, room, last, "login code replaced or expired"); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not redact an old QR code")
		}
		last = ""
	}
	return func(ctx context.Context, step commands.Step) {
		mu.Lock()
		defer mu.Unlock()
		if step.Type != commands.StepQR {
			redactLast(ctx)
			if step.Text != "" {
				screen.NotifyRoom(ctx, room, step.Text)
			}
			return
		}
		png, err := qrcode.Encode(step.Payload, qrcode.Medium, 512)
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("Could not draw a QR code")
			return
		}
		evt, err := screen.SendImage(ctx, room, png, "login-qr.png", step.Text)
		if err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("Could not send a QR code")
			return
		}
		redactLast(ctx)
		last = evt
	}
}
