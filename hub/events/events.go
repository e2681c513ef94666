// Package events is the hub's in-process event bus: the fleet, deployments
// and edges publish typed events (instance.status, instance.metrics,
// deployment.phase, …) and the WebSocket endpoint fans them out to
// subscribers. It owns delivery within one hub; fan-out between hubs goes
// through hub/coord. Slow subscribers lose events rather than block
// publishers, and are told so with a "events.dropped" event.
package events

import (
	"encoding/json"
	"sync"
	"time"
)

// Event types.
const (
	InstanceStatus    = "instance.status"
	InstanceMetrics   = "instance.metrics"
	InstanceCreated   = "instance.created"
	InstanceDeleted   = "instance.deleted"
	InstancePlacement = "instance.placement"
	HubStatus         = "hub.status"
	DeploymentPhase   = "deployment.phase"
	DeploymentUpdate  = "deployment.progress"
	EdgeStatus        = "edge.status"
	Dropped           = "events.dropped"
	DefaultBufferSize = 256
)

// Event is one message on the bus, as sent to WebSocket clients.
type Event struct {
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
	// Origin is the hub that published the event when it came from
	// another hub (fan-out between hubs); empty for this hub's own.
	Origin string `json:"origin,omitempty"`
}

// New makes an event of type typ with data encoded as JSON.
func New(typ string, data any) Event {
	b, err := json.Marshal(data)
	if err != nil {
		b = []byte(`null`)
	}
	return Event{Type: typ, Time: time.Now().UTC(), Data: b}
}

// Bus delivers events to subscribers. The zero value is not usable; use
// NewBus.
type Bus struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Subscription receives events on C (Subscribe) or M (SubscribeMessages)
// until Close; the other channel is nil.
type Subscription struct {
	C       <-chan Event
	M       <-chan *Message
	c       chan Event
	m       chan *Message
	bus     *Bus
	once    sync.Once
	dropped int
}

// Message is one published event as shared by every SubscribeMessages
// subscriber: its JSON is encoded once, by the first subscriber that asks,
// and the same bytes go to all, so a fan-out to 10,000 WebSocket clients
// encodes an event once rather than 10,000 times. A Message's channel slot
// is one pointer, where an Event is 88 bytes: a subscription's buffer of
// 256 is 2 KiB rather than 22 KiB. A Message must not be modified.
type Message struct {
	Event
	once sync.Once
	json []byte
}

// JSON is the event as the WebSocket endpoint sends it: exactly the bytes
// json.Encoder writes for the Event ({"type","time","data","origin"} and a
// newline), encoded once per message.
func (m *Message) JSON() []byte {
	m.once.Do(func() {
		b, err := json.Marshal(m.Event)
		if err != nil { // Data is not valid JSON: send it as null, as New does
			e := m.Event
			e.Data = []byte(`null`)
			b, _ = json.Marshal(e)
		}
		m.json = append(b, '\n')
	})
	return m.json
}

// Subscribe returns a subscription with a buffer of size events
// (DefaultBufferSize when size <= 0).
func (b *Bus) Subscribe(size int) *Subscription {
	if size <= 0 {
		size = DefaultBufferSize
	}
	c := make(chan Event, size)
	return b.add(&Subscription{C: c, c: c, bus: b})
}

// SubscribeMessages is Subscribe for many subscribers of the same events
// (WebSocket clients): events come as shared *Message values on M, with
// the same order, buffer and drop rules as Subscribe.
func (b *Bus) SubscribeMessages(size int) *Subscription {
	if size <= 0 {
		size = DefaultBufferSize
	}
	m := make(chan *Message, size)
	return b.add(&Subscription{M: m, m: m, bus: b})
}

func (b *Bus) add(s *Subscription) *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.closeChan()
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

func (s *Subscription) closeChan() {
	if s.c != nil {
		close(s.c)
	} else {
		close(s.m)
	}
}

// offer hands e (or its shared message *msg, made on first use) to s
// without blocking, and reports whether it was taken.
func (s *Subscription) offer(e Event, msg **Message) bool {
	if s.c != nil {
		select {
		case s.c <- e:
			return true
		default:
			return false
		}
	}
	if *msg == nil {
		*msg = &Message{Event: e}
	}
	select {
	case s.m <- *msg:
		return true
	default:
		return false
	}
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		defer s.bus.mu.Unlock()
		if _, ok := s.bus.subs[s]; ok {
			delete(s.bus.subs, s)
			s.closeChan()
		}
	})
}

// Publish delivers e to every subscriber without blocking. A subscriber
// whose buffer is full misses e; it gets an events.dropped event with the
// count as soon as it has room again.
func (b *Bus) Publish(e Event) {
	var msg *Message // shared by the message subscribers, made on first use
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.dropped > 0 {
			var notice *Message
			if !s.offer(New(Dropped, map[string]int{"count": s.dropped}), &notice) {
				s.dropped++
				continue
			}
			s.dropped = 0
		}
		if !s.offer(e, &msg) {
			s.dropped++
		}
	}
}

// Close ends every subscription.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		s.closeChan()
	}
}
