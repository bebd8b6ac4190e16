package commands

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
)

// RecoveryKeyShower keeps the recovery key of the bridge bot's
// cross-signing identity (the Matrix connector does) and shows it once.
type RecoveryKeyShower interface {
	// ShowRecoveryKey returns the recovery key to the admin asking in req
	// and marks it shown. It fails with ErrNotDirectChat outside the
	// admin's own direct chat with the bot, ErrNotEncrypted when that
	// chat is not encrypted, ErrNoRecoveryKey before the bot has an
	// identity, and ErrRecoveryKeyShown once the key was shown.
	ShowRecoveryKey(ctx context.Context, req *Request) (string, error)
}

// RecoveryKeyCommand is `recovery-key` (admins): it shows the recovery key
// of the bridge bot's cross-signing identity once, in the admin's
// encrypted direct chat with the bot. A second request, by any admin, is
// told it was shown already; there is no rotation (see the Matrix
// connector's ShowRecoveryKey).
func RecoveryKeyCommand(keeper RecoveryKeyShower) Command {
	return Command{
		Name:  "recovery-key",
		Usage: "recovery-key",
		Help:  "show the recovery key of the bridge's cross-signing identity, once (admins, in an encrypted direct chat with me)",
		Level: LevelAdmin,
		Args:  NoArgs,
		// The key is base58 in groups of four: the phone-number redaction
		// of ordinary answers must not touch it; no answer holds a number.
		Verbatim: true,
		Run: func(ctx context.Context, req *Request) string {
			key, err := keeper.ShowRecoveryKey(ctx, req)
			switch {
			case err == nil:
				return "Recovery key of the bridge's cross-signing identity — it is shown this once and never again, keep it in a password manager:\n\n" +
					key + "\n\n" +
					"The bridge does not need it to run. It unlocks the bot's cross-signing keys in secret storage on the homeserver if the bridge's database is lost."
			case errors.Is(err, ErrRecoveryKeyShown):
				return "The recovery key was already shown once; it is not shown again."
			case errors.Is(err, ErrNotDirectChat):
				return "Ask for the recovery key in your direct chat with me."
			case errors.Is(err, ErrNotEncrypted):
				return "This chat is not encrypted: turn on encryption here first, then ask again."
			case errors.Is(err, ErrNoRecoveryKey):
				return "The bridge has no cross-signing identity yet (end-to-end encryption off, or not set up yet); try again later."
			}
			zerolog.Ctx(ctx).Err(err).Msg("Failed to show the recovery key")
			return "Could not read the recovery key; see the bridge's log."
		},
	}
}
