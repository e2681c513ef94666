package cluster

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/redforge/controltower/hub/catalog"
)

func TestFSMAppliesAndReturnsApplicationErrors(t *testing.T) {
	f := &fsm{state: catalog.NewState()}
	data, _ := catalog.UpsertInstance(instance(1)).Encode()
	res := f.Apply(&raft.Log{Index: 5, Data: data}).(fsmResult)
	if inst, ok := res.Value.(catalog.Instance); res.Err != nil || !ok || inst.ModifyIndex != 5 {
		t.Fatalf("Apply = %+v", res)
	}
	data, _ = catalog.DeleteUser("nobody").Encode()
	if res := f.Apply(&raft.Log{Index: 6, Data: data}).(fsmResult); !errors.Is(res.Err, catalog.ErrNotFound) {
		t.Fatalf("Apply of a failing command = %+v, want ErrNotFound", res)
	}
}

// TestFSMPanicsOnUndecodableEntry: a committed entry that does not decode
// is a bug and must stop the node, not be skipped.
func TestFSMPanicsOnUndecodableEntry(t *testing.T) {
	f := &fsm{state: catalog.NewState()}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "entry 7") {
			t.Fatalf("recover() = %v, want a panic naming entry 7", r)
		}
	}()
	f.Apply(&raft.Log{Index: 7, Term: 1, Data: []byte("garbage")})
}

type memSink struct {
	bytes.Buffer
	cancelled, closed bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

func TestFSMSnapshotRestore(t *testing.T) {
	src := &fsm{state: catalog.NewState()}
	for i := range 3 {
		data, _ := catalog.UpsertInstance(instance(i)).Encode()
		src.Apply(&raft.Log{Index: uint64(i + 1), Data: data})
	}
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil || !sink.closed || sink.cancelled {
		t.Fatalf("Persist: %v (closed %v, cancelled %v)", err, sink.closed, sink.cancelled)
	}
	snap.Release()
	dst := &fsm{state: catalog.NewState()}
	if err := dst.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(persisted(t, dst.state), persisted(t, src.state)) {
		t.Fatal("restored FSM differs")
	}
	if err := dst.Restore(io.NopCloser(strings.NewReader("junk"))); !errors.Is(err, catalog.ErrCorruptSnapshot) {
		t.Fatalf("Restore(junk) = %v", err)
	}
}

type failingSink struct{ memSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFSMSnapshotCancelsOnError(t *testing.T) {
	snap, _ := (&fsm{state: catalog.NewState()}).Snapshot()
	sink := &failingSink{}
	if err := snap.Persist(sink); err == nil || !sink.cancelled || sink.closed {
		t.Fatalf("Persist: %v (cancelled %v, closed %v)", err, sink.cancelled, sink.closed)
	}
}
