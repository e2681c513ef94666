package broker

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/mochi-mqtt/server/v2/packets"
)

// LogPayloadPrefix is how many bytes of a payload a log line may carry,
// quoted; the size is logged beside it. No log line holds a whole payload,
// so one large publish cannot become one huge log line.
const LogPayloadPrefix = 64

// payloadAttr describes payload for a log line: its size and a quoted
// prefix of at most LogPayloadPrefix bytes.
func payloadAttr(key string, payload []byte) slog.Attr {
	return slog.Group(key, "bytes", len(payload), "prefix", strconv.Quote(truncate(string(payload), LogPayloadPrefix)))
}

// truncate returns at most n bytes of s, marked when cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// packetSafeHandler wraps the handler mochi logs through: mochi logs whole
// packets ("packet", "pk" attributes of type packets.Packet, whose Payload
// slog prints as decimal bytes, four times the payload's size). Each such
// attribute becomes a summary: type, topic, QoS, retain and payloadAttr.
type packetSafeHandler struct{ inner slog.Handler }

func (h packetSafeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h packetSafeHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(safeAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h packetSafeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		safe[i] = safeAttr(a)
	}
	return packetSafeHandler{h.inner.WithAttrs(safe)}
}

func (h packetSafeHandler) WithGroup(name string) slog.Handler {
	return packetSafeHandler{h.inner.WithGroup(name)}
}

// safeAttr replaces a packet (or a pointer to one) by its summary, and any
// byte slice by payloadAttr.
func safeAttr(a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	switch v := a.Value.Any().(type) {
	case packets.Packet:
		return packetAttr(a.Key, &v)
	case *packets.Packet:
		if v != nil {
			return packetAttr(a.Key, v)
		}
	case []byte:
		return payloadAttr(a.Key, v)
	}
	return a
}

func packetAttr(key string, pk *packets.Packet) slog.Attr {
	return slog.Group(key, "type", packets.PacketNames[pk.FixedHeader.Type], "topic", truncate(pk.TopicName, 256),
		"qos", pk.FixedHeader.Qos, "retain", pk.FixedHeader.Retain, payloadAttr("payload", pk.Payload))
}
