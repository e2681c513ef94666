package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redforge/controltower/hub/broker"
	"github.com/redforge/controltower/hub/coord"
)

// Bus is the part of the hub's MQTT bus the orchestrator uses.
type Bus interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
	Subscribe(ctx context.Context, filter string, qos byte, fn broker.Handler) (unsubscribe func(), err error)
}

// heldMsg is one held input message as stored in the hold queue.
type heldMsg struct {
	Sub     string `json:"sub"` // topic below redforge/in/{name}/ ("" for the bare topic)
	Payload []byte `json:"payload"`
}

// HoldQueue is the coord queue holding a logical instance's input.
func HoldQueue(logical string) string { return "deploy/hold/" + logical }

// relay forwards redforge/in/{name}/... to the live runtime's {live}/in/...
// or, while the logical instance is held, appends it to its hold queue.
// Messages are handled one at a time in arrival order, so holding,
// forwarding and replay never reorder them.
type relay struct {
	bus     Bus
	holds   coord.HoldQueue
	resolve func(logical string) (string, error) // logical name → live row name
	log     *slog.Logger

	in chan inMsg

	mu      sync.Mutex
	holding map[string]bool
}

type inMsg struct {
	topic, sub, name string
	payload          []byte
}

func newRelay(bus Bus, holds coord.HoldQueue, resolve func(string) (string, error), log *slog.Logger) *relay {
	return &relay{bus: bus, holds: holds, resolve: resolve, log: log, in: make(chan inMsg, 65536), holding: map[string]bool{}}
}

// run subscribes to the input topics and forwards until ctx ends.
func (r *relay) run(ctx context.Context) error {
	unsub, err := r.bus.Subscribe(ctx, InputPrefix+"#", 1, func(topic string, payload []byte) {
		name, sub, _ := strings.Cut(strings.TrimPrefix(topic, InputPrefix), "/")
		if name == "" {
			return
		}
		select {
		case r.in <- inMsg{topic: topic, sub: sub, name: name, payload: payload}:
		default:
			r.log.Error("input relay overloaded; message dropped", "topic", topic)
		}
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	go func() {
		defer unsub()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-r.in:
				r.handle(ctx, m)
			}
		}
	}()
	return nil
}

func (r *relay) handle(ctx context.Context, m inMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holding[m.name] {
		b, _ := json.Marshal(heldMsg{Sub: m.sub, Payload: m.payload})
		if _, err := r.holds.HoldPush(ctx, HoldQueue(m.name), b); err != nil {
			r.log.Error("hold input message", "instance", m.name, "error", err)
		}
		return
	}
	live, err := r.resolve(m.name)
	if err != nil {
		r.log.Warn("input for unknown instance dropped", "topic", m.topic, "error", err)
		return
	}
	if err := r.bus.Publish(ctx, subTopic(live, m.sub), m.payload, 1, false); err != nil {
		r.log.Error("forward input message", "instance", m.name, "error", err)
	}
}

func subTopic(instance, sub string) string {
	if sub == "" {
		return InTopic(instance)
	}
	return InTopic(instance) + "/" + sub
}

// hold makes new input of logical be held from now on.
func (r *relay) hold(logical string) {
	r.mu.Lock()
	r.holding[logical] = true
	r.mu.Unlock()
}

// held reports whether logical's input is being held.
func (r *relay) isHeld(logical string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holding[logical]
}

// release replays the held messages of logical to target, oldest first,
// then stops holding. Messages that arrive meanwhile queue up behind the
// replayed ones, so order is kept. It returns how many it replayed.
func (r *relay) release(ctx context.Context, logical, target string) (int, error) {
	q := HoldQueue(logical)
	n := 0
	for {
		batch, err := r.holds.HoldPeek(ctx, q, 256)
		if err != nil {
			return n, fmt.Errorf("replay held input: %w", err)
		}
		if len(batch) == 0 {
			r.mu.Lock()
			more, err := r.holds.HoldLen(ctx, q)
			if err == nil && more == 0 {
				delete(r.holding, logical)
				r.mu.Unlock()
				return n, nil
			}
			r.mu.Unlock()
			if err != nil {
				return n, fmt.Errorf("replay held input: %w", err)
			}
			continue
		}
		for _, h := range batch {
			var m heldMsg
			if err := json.Unmarshal(h.Data, &m); err != nil {
				r.log.Error("held message is corrupt; skipped", "instance", logical, "seq", h.Seq)
				continue
			}
			if err := r.bus.Publish(ctx, subTopic(target, m.Sub), m.Payload, 1, false); err != nil {
				return n, fmt.Errorf("replay held input: %w", err)
			}
			n++
		}
		if err := r.holds.HoldAck(ctx, q, batch[len(batch)-1].Seq); err != nil {
			return n, fmt.Errorf("replay held input: %w", err)
		}
	}
}

// heldCount is the number of messages held for logical.
func (r *relay) heldCount(ctx context.Context, logical string) int64 {
	n, _ := r.holds.HoldLen(ctx, HoldQueue(logical))
	return n
}
