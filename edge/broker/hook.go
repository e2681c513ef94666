package broker

import (
	"context"
	"errors"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/syncproto"
)

// outboxHook appends publishes on the record topics to the outbox inside
// OnPublish, which mochi runs before it sends the PUBACK (see the package
// comment). Other topics pass through untouched.
type outboxHook struct {
	mqtt.HookBase
	b     *Broker
	pipes pipelines
}

// ID returns the hook's id.
func (h *outboxHook) ID() string { return "redforge-outbox" }

// Provides reports that the hook handles OnPublish only.
func (h *outboxHook) Provides(b byte) bool { return b == mqtt.OnPublish || b == mqtt.OnDisconnect }

// OnPublish stores a record publish durably or refuses it. It returns nil
// only after the outbox committed the record.
func (h *outboxHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	stream, ok := h.b.cfg.Topics[pk.TopicName]
	if !ok || cl.Net.Inline { // inline: our own delivery of a stored record
		return pk, nil
	}
	arrived := h.b.cfg.Now()
	// A record is stored and synced, never kept as the topic's retained
	// message for later subscribers.
	pk.FixedHeader.Retain = false
	// Built only when something is logged: With allocates, and this is
	// the hot path of every record. It never carries the whole payload.
	log := func() *slog.Logger {
		return h.b.cfg.Logger.With(logKeyClient, cl.ID, logKeyTopic, pk.TopicName, payloadAttr(logKeyPayload, pk.Payload))
	}
	record := pk.Payload // mochi reads each packet into its own buffer, which nothing modifies: the outbox may keep it
	if stream == outbox.StreamVectors {
		// Stored, checksummed and sent in its canonical form (see
		// syncproto.VectorRecordFromJSON); the numbers are parsed once, here.
		rec, err := syncproto.VectorRecordFromJSON(nil, pk.Payload)
		if err != nil {
			h.b.refused[ReasonInvalidVector].Add(1)
			log().Debug("record refused", logKeyReason, ReasonInvalidVector, logKeyError, err)
			return pk, refusal(cl, pk, packets.ErrPayloadFormatInvalid)
		}
		record = rec
	} else if !syncproto.ValidJSONObject(pk.Payload) {
		h.b.refused[ReasonNotJSONObject].Add(1)
		log().Debug("record refused", logKeyReason, ReasonNotJSONObject)
		return pk, refusal(cl, pk, packets.ErrPayloadFormatInvalid)
	}
	if async, ok := h.b.cfg.Outbox.(AsyncAppender); ok && pk.FixedHeader.Qos == 1 {
		ctx, cancel := context.WithTimeout(h.b.ctx, h.b.cfg.AppendTimeout)
		p := h.pipelineFor(cl)
		wait := async.AppendAsync(ctx, stream, record, arrived)
		p.ch <- pending{pk: pk, stream: stream, wait: wait, cancel: cancel}
		return pk, packets.ErrRejectPacket // the pipeline acks after commit
	}
	ctx, cancel := context.WithTimeout(h.b.ctx, h.b.cfg.AppendTimeout)
	defer cancel()
	seq, err := h.b.cfg.Outbox.Append(ctx, stream, record, arrived)
	if errors.Is(err, outbox.ErrFull) {
		// Back-pressure, never silent loss: MQTT 5 publishers get reason
		// 0x97 (quota exceeded); 3.1.1 publishers get no PUBACK and resend.
		h.b.refused[ReasonQuota].Add(1)
		log().Warn("record refused", logKeyReason, ReasonQuota, logKeyError, err)
		return pk, refusal(cl, pk, packets.ErrQuotaExceeded)
	}
	if err != nil {
		h.b.refused[ReasonOutbox].Add(1)
		log().Warn("record refused", logKeyReason, ReasonOutbox, logKeyError, err)
		return pk, refusal(cl, pk, packets.ErrUnspecifiedError)
	}
	h.b.accepted[stream].Add(1)
	if h.b.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		log().Debug("record stored", logKeyStream, stream, logKeySeq, seq)
	}
	return pk, nil
}

// refusal returns the error that makes mochi refuse pk without acking it:
// a PUBACK reason code for MQTT 5 QoS 1, ErrRejectPacket (no ack, no
// delivery) otherwise, because mochi treats a Code from a 3.1.1 or QoS 0
// publish as success.
func refusal(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return code
	}
	return packets.ErrRejectPacket
}
