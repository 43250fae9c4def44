package daemon

import (
	"io"
	"log/slog"
)

// NewLogger is the logger c asks for (log_level, log_format), writing to
// w. c has passed Finish; an unknown level logs at info.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := ParseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
