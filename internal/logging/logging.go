// Package logging builds the zap loggers of GVS's daemons from their
// `log:` settings, the same way for every binary.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level ("debug", "info", "warn", "error") in
// format "json" (production: ISO-8601 "ts") or "console", writing to file
// ("" is stderr). Stack traces are left out of warnings and errors: they
// report operational news (a refused file, a lost peer), not bugs; a crash
// logs its own stack.
func New(level, format, file string) (*zap.Logger, error) {
	var zc zap.Config
	switch format {
	case "console":
		zc = zap.NewDevelopmentConfig()
	case "json", "":
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "ts"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	default:
		return nil, fmt.Errorf("log.format %q: use json or console", format)
	}
	zc.DisableStacktrace = true
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log.level %q: use debug, info, warn or error", level)
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	if file != "" {
		zc.OutputPaths = []string{file}
		zc.ErrorOutputPaths = []string{file}
	}
	return zc.Build()
}
