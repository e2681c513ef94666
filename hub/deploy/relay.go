package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

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
	// Mark is the leader relay's relayDoneMark of the delivery (with its
	// packet id), so a redelivery of a message held just before a leader
	// died is recognised in the queue (runLeader).
	Mark string `json:"mark,omitempty"`
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
	done    coord.KV                             // what the leader relay handled, by packet id (runLeader)
	resolve func(logical string) (string, error) // logical name → live row name
	log     *slog.Logger

	in chan inMsg

	// pace, when set, is called after each replayed batch and returns once
	// the target has taken it in (see release).
	pace func(ctx context.Context, target string)
	// held, when set, is told of each message held (Observer.MessagesHeld).
	held func(n int)

	mu      sync.Mutex
	holding map[string]bool

	// loops counts the goroutines run and runLeader start; wait joins them.
	loops sync.WaitGroup
}

type inMsg struct {
	topic, sub, name string
	payload          []byte
	mark             string // see heldMsg.Mark
}

func newRelay(bus Bus, holds coord.HoldQueue, resolve func(string) (string, error), log *slog.Logger) *relay {
	return &relay{bus: bus, holds: holds, resolve: resolve, log: log, in: make(chan inMsg, 65536), holding: map[string]bool{}}
}

// DurableBus is a bus that every hub of a cluster shares (an outside
// broker, --mqtt). On it each hub would receive every input message, so
// the relay runs on the Raft leader only, through a persistent session
// (SubscribeDurable) that the broker keeps while leadership moves: input
// published between the old leader's death and the new leader's
// subscription is queued by the broker and delivered to the new leader in
// order, and a message is acknowledged only after it was held or
// forwarded. *broker.External implements it.
type DurableBus interface {
	SubscribeDurable(ctx context.Context, clientID, filter string, qos byte, fn broker.DurableHandler) (stop func(), err error)
}

// DefaultRelaySession is the relay's session name on a DurableBus.
const DefaultRelaySession = "redforge-relay"

// run subscribes to the input topics and forwards until ctx ends. On a
// DurableBus it does nothing: the leader runs runLeader for its term.
func (r *relay) run(ctx context.Context) error {
	if _, ok := r.bus.(DurableBus); ok {
		return nil
	}
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
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		for {
			select {
			case <-ctx.Done():
				unsub()
				r.drainIn(ctx)
				return
			case m := <-r.in:
				r.handle(ctx, m)
			}
		}
	}()
	return nil
}

// relayDrainTimeout bounds how long a stopping relay keeps handling the
// messages it had already taken in.
const relayDrainTimeout = 10 * time.Second

// drainIn handles, after the relay's context ended, the messages queued
// in r.in: the broker acknowledged them to their publishers (QoS 1), so a
// hub shutting down must hold or forward them rather than drop them. The
// hub stops its background work before the broker and coord close, so
// both are still there; each message is bounded by relayDrainTimeout in
// all.
func (r *relay) drainIn(stopped context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(stopped), relayDrainTimeout)
	defer cancel()
	n := 0
	for {
		select {
		case m := <-r.in:
			r.handle(ctx, m)
			n++
		default:
			if n > 0 {
				r.log.Info("input relay stopped: handled the messages it had taken in", "messages", n)
			}
			return
		}
	}
}

// runLeader relays input on a DurableBus for the leadership term ctx,
// under the session clientID. Each message is handled inside the
// subscription callback (not queued in memory), so the broker's copy is
// acknowledged only once the message is held (in coord) or forwarded.
func (r *relay) runLeader(ctx context.Context, clientID string) error {
	db, ok := r.bus.(DurableBus)
	if !ok {
		return nil
	}
	stop, err := db.SubscribeDurable(ctx, clientID, InputPrefix+"#", 1, func(topic string, payload []byte, id uint16, redelivered bool) {
		name, sub, _ := strings.Cut(strings.TrimPrefix(topic, InputPrefix), "/")
		if name == "" {
			return
		}
		// A leader killed after handling a message but before the broker
		// had its ack leaves the message to be redelivered to the next
		// leader (seen in TestLeaderKilledMidDeployment: a message forwarded
		// to blue was held again and processed twice). So each handled
		// message is marked by packet id in coord, and a redelivered one
		// whose mark matches is acknowledged without being handled again.
		// The mark is written after the message was handled; one held just
		// before the leader died may have no mark yet, so a redelivery is
		// also looked for in the hold queue, where the mark travels with
		// the message.
		key, mark := relayDoneKey(clientID, id), relayDoneMark(topic, payload)
		heldMark := fmt.Sprintf("%x/%d", mark, id)
		if redelivered && r.alreadyRelayed(ctx, key, mark, name, heldMark) {
			r.log.Info("input message redelivered after a failover was already relayed; skipped", "topic", topic)
			return
		}
		r.handle(ctx, inMsg{topic: topic, sub: sub, name: name, payload: payload, mark: heldMark})
		if r.done != nil {
			if err := r.done.Set(ctx, key, mark, relayDoneTTL); err != nil {
				r.log.Warn("mark input message relayed", "topic", topic, "error", err)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		<-ctx.Done()
		stop()
	}()
	return nil
}

// wait returns once every loop started by run and runLeader has ended
// (their contexts must be done).
func (r *relay) wait() { r.loops.Wait() }

// alreadyRelayed reports whether a redelivered message was relayed
// before: its mark is recorded under key, or it is in name's hold queue.
func (r *relay) alreadyRelayed(ctx context.Context, key string, mark []byte, name, heldMark string) bool {
	if r.done != nil {
		if v, err := r.done.Get(ctx, key); err == nil && bytes.Equal(v, mark) {
			return true
		}
	}
	q := HoldQueue(name)
	n, err := r.holds.HoldLen(ctx, q)
	if err != nil || n == 0 {
		return false
	}
	held, err := r.holds.HoldPeek(ctx, q, int(n)) // a redelivery is rare: a whole scan is fine
	if err != nil {
		return false
	}
	for i := len(held) - 1; i >= 0; i-- { // a redelivery repeats one of the last
		var m heldMsg
		if json.Unmarshal(held[i].Data, &m) == nil && m.Mark == heldMark {
			return true
		}
	}
	return false
}

// relayDoneTTL keeps a relayed message's mark long enough to outlive
// any failover; a packet id's mark is overwritten when the broker reuses
// the id for a later message.
const relayDoneTTL = 10 * time.Minute

func relayDoneKey(session string, id uint16) string {
	return "deploy/relayed/" + session + "/" + strconv.Itoa(int(id))
}

// relayDoneMark identifies a message's content: a redelivery has the
// packet id and the content of the delivery it repeats.
func relayDoneMark(topic string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)[:16]
}

func (r *relay) handle(ctx context.Context, m inMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holding[m.name] {
		b, _ := json.Marshal(heldMsg{Sub: m.sub, Payload: m.payload, Mark: m.mark})
		if err := r.push(ctx, HoldQueue(m.name), b); err != nil {
			r.log.Error("hold input message; message lost", "instance", m.name, "error", err)
		} else if r.held != nil {
			r.held(1)
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

// push holds b in queue. When the queue can take a push again safely
// (coord.HoldPusherOnce: Redis), a failed push is retried under the same
// id for up to coordRetry, so a Redis failover in the middle of a
// deployment neither loses nor duplicates a held message; the relay
// handles nothing else meanwhile, so order is kept.
func (r *relay) push(ctx context.Context, queue string, b []byte) error {
	once, ok := r.holds.(coord.HoldPusherOnce)
	if !ok {
		_, err := r.holds.HoldPush(ctx, queue, b)
		return err
	}
	id := newPushID()
	return r.retry(ctx, "hold input message", func() error {
		_, err := once.HoldPushOnce(ctx, queue, id, b)
		return err
	})
}

// coordRetry bounds how long the relay retries a failed coord call that
// is safe to repeat (a held push by id, a peek, an ack): longer than a
// Redis Sentinel failover (a few seconds).
var coordRetry = 30 * time.Second

// notReplicatedGrace is how long the relay retries a hold write that took
// effect but that no replica confirmed (coord.ErrNotReplicated) before it
// accepts it as it is: with every replica gone the master still holds the
// message, and blocking the relay longer would only delay everything.
var notReplicatedGrace = 3 * time.Second

// retry calls f until it succeeds, ctx ends, coord is closed or
// coordRetry has passed, backing off from 50 ms to 500 ms; it returns
// f's last error. Only calls that are safe to repeat go through it. A
// write that took effect without a replica's confirmation is accepted,
// with a warning, after notReplicatedGrace.
func (r *relay) retry(ctx context.Context, what string, f func() error) error {
	start := time.Now()
	deadline := start.Add(coordRetry)
	wait := 50 * time.Millisecond
	for tries := 1; ; tries++ {
		err := f()
		if errors.Is(err, coord.ErrNotReplicated) && time.Since(start) >= notReplicatedGrace {
			r.log.Warn(what+": done on the coordination master but no replica confirmed it; it is lost if the master dies now", "error", err)
			return nil
		}
		if err == nil || errors.Is(err, coord.ErrClosed) || ctx.Err() != nil || time.Now().After(deadline) {
			if err == nil && tries > 1 {
				r.log.Info(what+": coordination is back", "tries", tries)
			}
			return err
		}
		if tries == 1 {
			r.log.Warn(what+" failed; retrying (coordination failing over?)", "error", err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// newPushID names one held message for HoldPushOnce.
func newPushID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
	n, unpaced := 0, 0
	chunk, lastLeft := paceMin, int64(-1)
	for {
		var batch []coord.Held
		err := r.retry(ctx, "peek held input", func() (err error) {
			batch, err = r.holds.HoldPeek(ctx, q, chunk)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("replay held input: %w", err)
		}
		if len(batch) == 0 {
			r.mu.Lock()
			var more int64
			err := r.retry(ctx, "count held input", func() (err error) {
				more, err = r.holds.HoldLen(ctx, q)
				return err
			})
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
		if r.pace != nil && n == 0 && unpaced == 0 {
			// Before the first message, the same round trip as between
			// chunks: the target answers it only once its MQTT client is
			// connected and subscribed. A runtime that outlived a hub's
			// restart may still be reconnecting to the new broker, which
			// would drop a replay published to no subscriber (seen in
			// TestDeploymentResumesAfterHubRestart: the first chunk of 16
			// was lost).
			r.pace(ctx, target)
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
		// An ack is safe to repeat, and one that failed after the batch
		// was published must not be left undone: the batch would be
		// replayed again (duplicates) by a retried RESUME.
		last := batch[len(batch)-1].Seq
		if err := r.retry(ctx, "ack replayed input", func() error { return r.holds.HoldAck(ctx, q, last) }); err != nil {
			return n, fmt.Errorf("replay held input: %w", err)
		}
		unpaced += len(batch)
		if r.pace != nil && unpaced >= chunk {
			// A broker queues a bounded number of QoS 1 messages per
			// subscriber (Mosquitto: max_queued_messages, 1000 by default)
			// and drops the rest silently. Thousands of held messages
			// published at once would overflow the target's queue, so after
			// every chunk of messages the replay waits until the target
			// has taken them in. Only a backlog is paced: the short batches
			// of input arriving during the replay are not, or a steady
			// input stream could keep the queue from ever being seen empty.
			//
			// Small chunks also keep the target responsive: a runtime
			// handed hundreds of messages at once answers the HTTP
			// requests the proxy just switched to it only after working
			// through them all (p99 during a deployment rose to 5x steady
			// state). So the replay starts with paceMin messages per round
			// and doubles the chunk, up to paceMax, only while the backlog
			// is not shrinking (input arriving faster than it drains).
			r.pace(ctx, target)
			unpaced = 0
			if left, err := r.holds.HoldLen(ctx, q); err == nil {
				if lastLeft >= 0 && left >= lastLeft {
					chunk = min(2*chunk, paceMax)
				}
				lastLeft = left
			}
		}
	}
}

// paceMin and paceMax bound how many replayed messages may be on their
// way to the target before release waits for it (see relay.pace).
const (
	paceMin = 16
	paceMax = 256
)

// heldCount is the number of messages held for logical.
func (r *relay) heldCount(ctx context.Context, logical string) int64 {
	n, _ := r.holds.HoldLen(ctx, HoldQueue(logical))
	return n
}
