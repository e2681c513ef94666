package broker

import (
	"context"
	"log/slog"
)

// quietEOF is the embedded broker's log handler: a connection that closes
// before it sends a packet ("read connection: EOF", which is what Ping and
// every TCP health probe do) is logged at debug, not warn, so a hub that
// checks its components every few seconds does not fill the log.
type quietEOF struct{ slog.Handler }

func (q quietEOF) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		eof := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" && a.Value.String() == "read connection: EOF" {
				eof = true
				return false
			}
			return true
		})
		if eof {
			if !q.Handler.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
			d := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
			r.Attrs(func(a slog.Attr) bool { d.AddAttrs(a); return true })
			r = d
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietEOF) WithAttrs(as []slog.Attr) slog.Handler { return quietEOF{q.Handler.WithAttrs(as)} }
func (q quietEOF) WithGroup(n string) slog.Handler       { return quietEOF{q.Handler.WithGroup(n)} }
