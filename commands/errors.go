package commands

import "errors"

var (
	// ErrDuplicate is returned by Register for a name already registered.
	ErrDuplicate = errors.New("command already registered")
	// ErrInvalidCommand is returned by Register for a command without a
	// name, usage or function.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrUsage is what an argument check returns when the arguments do not
	// fit the usage; the answer then is the usage alone. Wrap it (or return
	// another error) to name the problem too.
	ErrUsage = errors.New("wrong arguments")
)

// Answers of the recovery-key command's keeper (RecoveryKeyShower).
var (
	// ErrNotDirectChat means a secret was asked for outside the asker's
	// own direct chat with the bot.
	ErrNotDirectChat = errors.New("ask in your direct chat with the bot")
	// ErrNotEncrypted means a secret was asked for in a chat that is not
	// end-to-end encrypted.
	ErrNotEncrypted = errors.New("this chat is not encrypted")
	// ErrNoRecoveryKey means the bot has no cross-signing identity yet.
	ErrNoRecoveryKey = errors.New("no recovery key yet")
	// ErrRecoveryKeyShown means the recovery key was shown before.
	ErrRecoveryKeyShown = errors.New("the recovery key was already shown")
)
