package syncproto

import (
	"slices"
	"strings"
)

// The streams of the sync contract: every record an edge sends belongs to
// one of them, and a batch naming any other is refused.
const (
	StreamVectors     = "vectors"
	StreamAudit       = "audit"
	StreamAIDecisions = "ai_decisions"
	StreamCheckpoints = "checkpoints"
	StreamMetrics     = "metrics"
)

var streams = []string{StreamVectors, StreamAudit, StreamAIDecisions, StreamCheckpoints, StreamMetrics}

// Streams returns the contract's stream names in a stable order.
func Streams() []string { return slices.Clone(streams) }

// KnownStream reports whether name is one of Streams.
func KnownStream(name string) bool { return slices.Contains(streams, name) }

// CheckStream returns a *DecodeError (ErrMalformed, field "stream") unless
// name is one of Streams.
func CheckStream(name string) error {
	if !KnownStream(name) {
		return decodeErr(ErrMalformed, "stream", "%.64q is not a stream; the streams are %s", name, strings.Join(streams, ", "))
	}
	return nil
}

// CheckPayload checks a record's payload as the edge's broker checks a
// publish before storing it: on every stream a JSON object; on vectors
// also a record sent as its parts (empty payload beside a vector) or a
// canonical vector record (IsVectorRecord, well formed). field names the
// record ("records[3]") in the *DecodeError (ErrMalformed) it returns.
// The payload is never quoted in the error.
func CheckPayload(field, stream string, payload []byte, hasVector bool) error {
	switch {
	case stream == StreamVectors && len(payload) == 0 && hasVector:
		return nil
	case stream == StreamVectors && IsVectorRecord(payload):
		if _, _, _, ok := SplitVectorRecord(payload); !ok {
			return decodeErr(ErrMalformed, field+".payload", "is not a well-formed canonical vector record")
		}
		return nil
	case !ValidJSONObject(payload):
		return decodeErr(ErrMalformed, field+".payload", "%d bytes that are not one JSON object; records on %s must be JSON objects", len(payload), stream)
	}
	return nil
}
