package cluster

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"github.com/redforge/controltower/hub/catalog"
)

// fsm is the thin adapter between raft and the catalog.
type fsm struct {
	state *catalog.State
}

var _ raft.FSM = (*fsm)(nil)

// fsmResult is what fsm.Apply returns for every command: the catalog's
// result and application error (not found, conflict, …), which reach the
// caller of Node.Apply on the leader.
type fsmResult struct {
	Value any
	Err   error
}

// Apply applies a committed log entry. An entry that does not decode is a
// bug (every entry was encoded by Node.Apply, or by a newer binary that
// must not be mixed with this one) and panics: carrying on would let this
// node's state diverge from the others'.
func (f *fsm) Apply(l *raft.Log) any {
	cmd, err := catalog.DecodeCommand(l.Data)
	if err != nil {
		panic(fmt.Sprintf("cluster: committed log entry %d (term %d) cannot be decoded: %v", l.Index, l.Term, err))
	}
	v, err := f.state.Apply(l.Index, cmd)
	return fsmResult{Value: v, Err: err}
}

// Snapshot takes a point-in-time view of the catalog; raft persists it
// while applying goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return fsmSnapshot{snap: f.state.Snapshot()}, nil
}

// Restore replaces the catalog with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.state.Restore(rc)
}

type fsmSnapshot struct {
	snap *catalog.Snapshot
}

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.Persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
