package events

import (
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
