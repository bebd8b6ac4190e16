package daemon

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/config"
)

// NewLogger builds the daemon's logger: console output on a terminal, JSON
// otherwise (or as logging.format says).
func NewLogger(cfg config.Logging, out *os.File) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || cfg.Level == "" {
		level = zerolog.InfoLevel
	}
	var w io.Writer = out
	console := cfg.Format == "console" || (cfg.Format != "json" && isatty.IsTerminal(out.Fd()))
	if console {
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.DateTime}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}
