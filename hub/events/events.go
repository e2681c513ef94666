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

// Subscription receives events on C until Close.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	bus     *Bus
	once    sync.Once
	dropped int
}

// Subscribe returns a subscription with a buffer of size events
// (DefaultBufferSize when size <= 0).
func (b *Bus) Subscribe(size int) *Subscription {
	if size <= 0 {
		size = DefaultBufferSize
	}
	c := make(chan Event, size)
	s := &Subscription{C: c, c: c, bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(c)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		defer s.bus.mu.Unlock()
		if _, ok := s.bus.subs[s]; ok {
			delete(s.bus.subs, s)
			close(s.c)
		}
	})
}

// Publish delivers e to every subscriber without blocking. A subscriber
// whose buffer is full misses e; it gets an events.dropped event with the
// count as soon as it has room again.
func (b *Bus) Publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.dropped > 0 {
			select {
			case s.c <- New(Dropped, map[string]int{"count": s.dropped}):
				s.dropped = 0
			default:
				s.dropped++
				continue
			}
		}
		select {
		case s.c <- e:
		default:
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
		close(s.c)
	}
}
