package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/redforge/controltower/edge/outbox"
)

// AsyncAppender is an Appender that can queue a record and wait for its
// commit later; edge/outbox.Outbox implements it. With it the broker
// pipelines a client's QoS 1 publishes (see pipeline) instead of holding
// the client's read loop for one commit per message.
type AsyncAppender interface {
	AppendAsync(ctx context.Context, stream string, payload []byte, arrived time.Time) func() (int64, error)
}

// pipelineDepth bounds the QoS 1 records of one client queued for commit;
// when it is full, the client's read loop waits (back-pressure).
const pipelineDepth = 1024

// A pipeline keeps PUBACK after commit while letting one client have many
// records in flight: OnPublish queues the append (in arrival order) and
// refuses the packet to mochi with ErrRejectPacket, so mochi neither acks
// nor delivers it; the pipeline's goroutine waits for each commit in
// arrival order, then writes the PUBACK itself (in order, as MQTT requires
// for QoS 1) and hands the message to subscribers through the inline
// client. A refused record gets no PUBACK (3.1.1) or a PUBACK with the
// reason code (MQTT 5), exactly as on the synchronous path.
type pipeline struct {
	ch chan pending
}

type pending struct {
	pk     packets.Packet
	stream string
	wait   func() (int64, error)
	cancel context.CancelFunc
}

type pipelines struct {
	mu sync.Mutex
	m  map[*mqtt.Client]*pipeline
}

func (h *outboxHook) pipelineFor(cl *mqtt.Client) *pipeline {
	h.pipes.mu.Lock()
	defer h.pipes.mu.Unlock()
	if h.pipes.m == nil {
		h.pipes.m = map[*mqtt.Client]*pipeline{}
	}
	p := h.pipes.m[cl]
	if p == nil {
		p = &pipeline{ch: make(chan pending, pipelineDepth)}
		h.pipes.m[cl] = p
		go h.runPipeline(cl, p)
	}
	return p
}

// OnDisconnect ends the client's pipeline once its queued records are answered.
func (h *outboxHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.pipes.mu.Lock()
	p := h.pipes.m[cl]
	delete(h.pipes.m, cl)
	h.pipes.mu.Unlock()
	if p != nil {
		close(p.ch)
	}
}

// runPipeline answers a client's queued records in arrival order. It takes
// what is queued at once (usually one group commit's worth), waits for each
// commit in order, and writes the PUBACKs of a run of stored records in one
// write: 4 bytes each (a success PUBACK needs no reason code or
// properties in MQTT 5 either), under the client's lock like mochi's own
// WritePacket. A refusal first flushes the PUBACKs before it.
func (h *outboxHook) runPipeline(cl *mqtt.Client, p *pipeline) {
	items := make([]pending, 0, maxCoalesce)
	acks := make([]byte, 0, 4*maxCoalesce)
	for first := range p.ch {
		items = append(items[:0], first)
	gather:
		for len(items) < maxCoalesce {
			select {
			case it, ok := <-p.ch:
				if !ok {
					break gather
				}
				items = append(items, it)
			default:
				break gather
			}
		}
		acks = acks[:0]
		stored := items[:0:0]
		for _, it := range items {
			seq, err := it.wait()
			it.cancel()
			if err != nil {
				writeAcks(cl, acks)
				acks = acks[:0]
				h.refuseAsync(cl, it, err)
				continue
			}
			h.b.accepted[it.stream].Add(1)
			acks = append(acks, packets.Puback<<4, 2, byte(it.pk.PacketID>>8), byte(it.pk.PacketID))
			stored = append(stored, it)
			h.b.cfg.Logger.Debug("record stored", logKeyClient, cl.ID, logKeyStream, it.stream, logKeySeq, seq)
		}
		writeAcks(cl, acks)
		for _, it := range stored {
			h.b.deliver(it.pk)
		}
	}
}

// maxCoalesce bounds the PUBACKs written at once.
const maxCoalesce = 256

// writeAcks writes encoded PUBACKs in one write. A gone client resends
// after reconnecting; the records are stored either way.
func writeAcks(cl *mqtt.Client, acks []byte) {
	if len(acks) == 0 || cl.Closed() || cl.Net.Conn == nil {
		return
	}
	cl.Lock()
	defer cl.Unlock()
	_, _ = cl.Net.Conn.Write(acks)
}

func (h *outboxHook) refuseAsync(cl *mqtt.Client, it pending, err error) {
	reason, code := ReasonOutbox, packets.ErrUnspecifiedError
	if errors.Is(err, outbox.ErrFull) {
		reason, code = ReasonQuota, packets.ErrQuotaExceeded
	}
	h.b.refused[reason].Add(1)
	h.b.cfg.Logger.Warn("record refused", logKeyClient, cl.ID, logKeyTopic, it.pk.TopicName, logKeyReason, reason, logKeyError, err)
	if cl.Properties.ProtocolVersion == 5 {
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: it.pk.PacketID, ReasonCode: code.Code})
	}
}
