package commands

import "github.com/switchboard-bridge/switchboard/config"

// Level is a permission level; a command needs at least its own.
type Level int

// Permission levels, lowest first (config.PermRelay, PermUser, PermAdmin).
const (
	LevelNone Level = iota
	LevelRelay
	LevelUser
	LevelAdmin
)

// LevelOf reads a permission level as the config writes it ("relay",
// "user", "admin"); anything else is LevelNone.
func LevelOf(perm string) Level {
	switch perm {
	case config.PermRelay:
		return LevelRelay
	case config.PermUser:
		return LevelUser
	case config.PermAdmin:
		return LevelAdmin
	}
	return LevelNone
}

// String is the level as the config writes it ("none" for LevelNone).
func (l Level) String() string {
	switch l {
	case LevelRelay:
		return config.PermRelay
	case LevelUser:
		return config.PermUser
	case LevelAdmin:
		return config.PermAdmin
	}
	return "none"
}
