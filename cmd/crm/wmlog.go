package main

import (
	"github.com/ThreeDotsLabs/watermill"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger adapts the server's zap logger for Watermill, so the router, the subscribers,
// the projections and the process managers log in the same structured stream.
type zapLogger struct {
	log *zap.Logger
}

var _ watermill.LoggerAdapter = zapLogger{}

func newWatermillLogger(log *zap.Logger) watermill.LoggerAdapter {
	return zapLogger{log: log.With(zap.String("component", "watermill"))}
}

func fieldsOf(fields watermill.LogFields) []zap.Field {
	zf := make([]zap.Field, 0, len(fields))
	for k, v := range fields {
		zf = append(zf, zap.Any(k, v))
	}
	return zf
}

func (l zapLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.log.Error(msg, append(fieldsOf(fields), zap.Error(err))...)
}

// Info is Watermill's own life cycle (handlers added, started, closed): at debug, so that the
// server's log at info says what the server does, not how its router is wired.
func (l zapLogger) Info(msg string, fields watermill.LogFields) { l.Debug(msg, fields) }

func (l zapLogger) Debug(msg string, fields watermill.LogFields) {
	if ce := l.log.Check(zapcore.DebugLevel, msg); ce != nil {
		ce.Write(fieldsOf(fields)...)
	}
}

// Trace is Watermill's per-message chatter: kept at debug, where only a developer looks.
func (l zapLogger) Trace(msg string, fields watermill.LogFields) { l.Debug(msg, fields) }

func (l zapLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return zapLogger{log: l.log.With(fieldsOf(fields)...)}
}
