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
