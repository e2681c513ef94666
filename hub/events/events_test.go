package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

func TestBusDeliversInOrderAndReportsDrops(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(4)
	for i := 0; i < 4; i++ {
		b.Publish(New(InstanceStatus, i))
	}
	b.Publish(New(InstanceStatus, 99)) // dropped: buffer full
	for i := 0; i < 4; i++ {
		e := <-s.C
		if string(e.Data) != string(rune('0'+i)) {
			t.Fatalf("event %d = %s", i, e.Data)
		}
	}
	b.Publish(New(InstanceStatus, 5))
	if e := <-s.C; e.Type != Dropped || string(e.Data) != `{"count":1}` {
		t.Fatalf("want a dropped notice first, got %s %s", e.Type, e.Data)
	}
	if e := <-s.C; string(e.Data) != "5" {
		t.Fatalf("event after drop = %s", e.Data)
	}
	s.Close()
	s.Close()
	if _, ok := <-s.C; ok {
		t.Fatal("channel open after Close")
	}
	b.Publish(New(InstanceStatus, 6)) // no subscriber: no panic
	s2 := b.Subscribe(1)
	b.Close()
	if _, ok := <-s2.C; ok {
		t.Fatal("subscription open after bus Close")
	}
}

// The message subscribers of one Publish share one *Message, whose JSON
// is byte for byte what json.Encoder (the WebSocket endpoint's WriteJSON
// before) wrote for the Event, encoded once.
func TestMessagesShareOneEncodingIdenticalToEncoder(t *testing.T) {
	b := NewBus()
	s1, s2 := b.SubscribeMessages(4), b.SubscribeMessages(4)
	plain := b.Subscribe(4)
	e := New(InstanceStatus, map[string]any{"id": "i-1", "status": "running", "note": "<&>"})
	e.Origin = "hub-2"
	b.Publish(e)
	m1, m2 := <-s1.M, <-s2.M
	if m1 != m2 {
		t.Fatal("two message subscribers got different *Message values for one Publish")
	}
	if got := <-plain.C; got.Time != e.Time || string(got.Data) != string(e.Data) {
		t.Fatalf("plain subscriber got %+v, want %+v", got, e)
	}
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(e); err != nil {
		t.Fatal(err)
	}
	if got := m1.JSON(); !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("JSON() = %q, want %q", got, want.Bytes())
	}
	if &m1.JSON()[0] != &m2.JSON()[0] {
		t.Fatal("JSON() encoded again for the second subscriber")
	}
	// Data that is not JSON goes as null rather than failing.
	b.Publish(Event{Type: InstanceStatus, Data: json.RawMessage(`{bad`)})
	if got := (<-s1.M).JSON(); !bytes.Contains(got, []byte(`"data":null`)) {
		t.Fatalf("bad data encoded as %q", got)
	}
}

// A full message subscriber loses events and is told how many, exactly as
// a plain one, without holding back another message subscriber.
func TestMessageSubscriberDropsWithoutBlockingOthers(t *testing.T) {
	b := NewBus()
	slow, fast := b.SubscribeMessages(2), b.SubscribeMessages(2)
	for i := range 5 {
		b.Publish(New(InstanceStatus, i))
		if m := <-fast.M; string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("fast subscriber got %s, want %d", m.Data, i)
		}
	}
	for i := range 2 {
		if m := <-slow.M; string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("slow subscriber got %s, want %d", m.Data, i)
		}
	}
	b.Publish(New(InstanceStatus, 5))
	if m := <-slow.M; m.Type != Dropped || string(m.Data) != `{"count":3}` {
		t.Fatalf("want a notice of 3 dropped, got %s %s", m.Type, m.Data)
	}
	if m := <-slow.M; string(m.Data) != "5" {
		t.Fatalf("event after the notice = %s", m.Data)
	}
	slow.Close()
	b.Close()
	if _, ok := <-fast.M; !ok {
		t.Fatal("fast subscriber lost event 5")
	}
	if _, ok := <-fast.M; ok {
		t.Fatal("message subscription open after bus Close")
	}
}
