package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
	"go.etcd.io/bbolt"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err == nil || !strings.Contains(err.Error(), "DataDir: required") {
		t.Fatalf("default config without DataDir: %v", err)
	}
	cfg := Config{DataDir: "x", BindAddr: "nonsense", AdvertiseAddr: "0.0.0.0:7000", HeartbeatTimeout: time.Second, ElectionTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 2 * time.Second}
	err := cfg.Validate()
	for _, field := range []string{"BindAddr", "AdvertiseAddr", "ElectionTimeout", "LeaderLeaseTimeout"} {
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("Validate() = %v, want a problem with %s", err, field)
		}
	}
	d := DefaultConfig()
	if d.BindAddr != DefaultBindAddr || d.PingGrace != 3*DefaultElectionTimeout || d.Logger == nil {
		t.Fatalf("DefaultConfig() = %+v", d)
	}
}

func TestNewDoesNoIO(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	New(Config{DataDir: dir}, catalog.NewState())
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New touched the data directory: %v", err)
	}
}

func TestSingleNodeBootstrap(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "solo", dir)
	cfg.Bootstrap = true
	n, state := openNode(t, cfg)

	if got := n.State(); got != Leader {
		t.Fatalf("State() = %q, want Leader", got)
	}
	if id, addr := n.Leader(); id != "solo" || addr != n.Addr() || addr == "" {
		t.Fatalf("Leader() = %q, %q; want solo, %q", id, addr, n.Addr())
	}
	if err := n.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	servers, err := n.Servers()
	if err != nil || len(servers) != 1 || servers[0] != (Server{ID: "solo", Addr: n.Addr(), Voter: true, Leader: true}) {
		t.Fatalf("Servers() = %+v, %v", servers, err)
	}
	if st := n.Stats(); st["state"] != "Leader" || st["node_id"] != "solo" || st["addr"] != n.Addr() {
		t.Fatalf("Stats() = %v", st)
	}
	for _, f := range []string{"raft/raft.db", "raft/node-id", "raft/snapshots"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	v := mustApply(t, n, catalog.UpsertInstance(instance(1)))
	inst, ok := v.(catalog.Instance)
	if !ok || inst.ModifyIndex == 0 || inst.ModifyIndex != state.Index() {
		t.Fatalf("Apply result = %#v (state index %d)", v, state.Index())
	}
	if got, err := state.Instance("i-1"); err != nil || got.Name != "flow-1" {
		t.Fatalf("state after apply: %+v, %v", got, err)
	}
	// Application failures come back as the catalog's errors.
	if _, err := n.Apply(ctxT(t), catalog.UpsertInstance(catalog.Instance{ID: "i-2", Name: "FLOW-1"})); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("conflicting apply: %v, want catalog.ErrConflict", err)
	}
	if _, err := n.Apply(ctxT(t), catalog.DeleteUser("nobody")); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("delete missing user: %v, want catalog.ErrNotFound", err)
	}
	// A command that cannot be encoded never reaches the log.
	before := n.raft.LastIndex()
	if _, err := n.Apply(ctxT(t), catalog.PutSetting("bad", func() {})); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("unencodable command: %v, want catalog.ErrInvalid", err)
	}
	if _, err := n.Apply(ctxT(t), catalog.Command{Type: catalog.CmdDeleteUser, Version: 1, Payload: []byte("{oops")}); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("hand-built undecodable command: %v, want catalog.ErrInvalid", err)
	}
	if got := n.raft.LastIndex(); got != before {
		t.Fatalf("last log index moved from %d to %d", before, got)
	}
	if err := n.ConsistentRead(ctxT(t)); err != nil {
		t.Fatalf("ConsistentRead: %v", err)
	}
}

func TestClosedNode(t *testing.T) {
	cfg := testConfig(t, "solo", t.TempDir())
	cfg.Bootstrap = true
	n, _ := openNode(t, cfg)
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := n.State(); got != "Shutdown" {
		t.Fatalf("State() = %q", got)
	}
	if st := n.Stats(); st["state"] != "Shutdown" {
		t.Fatalf("Stats() = %v", st)
	}
	if id, addr := n.Leader(); id != "" || addr != "" {
		t.Fatalf("Leader() = %q, %q", id, addr)
	}
	_, applyErr := n.Apply(ctxT(t), catalog.PutSetting("k", 1))
	_, serversErr := n.Servers()
	for name, err := range map[string]error{
		"Ping": n.Ping(ctxT(t)), "Apply": applyErr, "ConsistentRead": n.ConsistentRead(ctxT(t)),
		"Servers": serversErr, "Join": n.Join(ctxT(t), "x", "127.0.0.1:1", true), "Remove": n.Remove(ctxT(t), "x"),
	} {
		if !errors.Is(err, ErrShutdown) {
			t.Errorf("%s on a closed node: %v, want ErrShutdown", name, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "a", dir)
	cfg.Bootstrap = true
	n, _ := openNode(t, cfg)

	if err := n.Open(ctxT(t)); err == nil || !strings.Contains(err.Error(), "already open") {
		t.Errorf("second Open: %v", err)
	}
	other := cfg
	if err := New(other, catalog.NewState()).Open(ctxT(t)); err == nil || !strings.Contains(err.Error(), "another hub") {
		t.Errorf("Open on a data directory in use: %v", err)
	}
	n.Close()
	other.NodeID = "b"
	if err := New(other, catalog.NewState()).Open(ctxT(t)); err == nil || !strings.Contains(err.Error(), `belongs to node "a"`) {
		t.Errorf("Open with another NodeID: %v", err)
	}
	used := catalog.NewState()
	used.Apply(1, catalog.PutSetting("k", 1))
	if err := New(cfg, used).Open(ctxT(t)); err == nil || !strings.Contains(err.Error(), "empty catalog.State") {
		t.Errorf("Open with a non-empty state: %v", err)
	}
	wild := testConfig(t, "w", t.TempDir())
	wild.BindAddr = "0.0.0.0:0"
	if err := New(wild, catalog.NewState()).Open(ctxT(t)); err == nil || !strings.Contains(err.Error(), "AdvertiseAddr") {
		t.Errorf("Open bound to all interfaces without AdvertiseAddr: %v", err)
	}
	if err := New(Config{}, catalog.NewState()).Open(ctxT(t)); err == nil || !strings.Contains(err.Error(), "DataDir") {
		t.Errorf("Open without DataDir: %v", err)
	}
}

func TestNodeIDIsGeneratedAndKept(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "", dir)
	cfg.Bootstrap = true
	n, _ := openNode(t, cfg)
	id, addr := n.ID(), n.Addr()
	if len(id) != 36 {
		t.Fatalf("generated ID %q is not a UUID", id)
	}
	n.Close()
	cfg.BindAddr = addr
	n2, _ := openNode(t, cfg)
	if n2.ID() != id {
		t.Fatalf("ID after restart = %q, want %q", n2.ID(), id)
	}
}

// writeAll applies a mix of commands and returns the number applied.
func writeAll(t *testing.T, n *Node, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		mustApply(t, n, catalog.UpsertInstance(instance(i)))
		mustApply(t, n, catalog.PutUser(catalog.User{ID: "u-" + instance(i).ID, Username: instance(i).Name, Role: catalog.RoleViewer}))
	}
	mustApply(t, n, catalog.DeleteInstance(instance(from).ID))
	mustApply(t, n, catalog.PutSetting("last", to))
}

// TestRestartReplaysLog: with no snapshot, a reopened node rebuilds the
// identical catalog from the log alone.
func TestRestartReplaysLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "solo", dir)
	cfg.Bootstrap = true
	n, state := openNode(t, cfg)
	writeAll(t, n, 0, 10)
	want := persisted(t, state)
	cfg.BindAddr = n.Addr()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if snaps, _ := os.ReadDir(filepath.Join(dir, "raft", "snapshots")); len(snaps) != 0 {
		t.Fatalf("unexpected snapshots %v: this test is about log replay", snaps)
	}

	n2, state2 := openNode(t, cfg)
	if got := persisted(t, state2); string(got) != string(want) {
		t.Fatal("state after restart differs from before")
	}
	mustApply(t, n2, catalog.UpsertInstance(instance(99)))
	if inst, _ := state2.Instance("i-99"); inst.ModifyIndex <= state.Index() {
		t.Fatalf("write after restart got index %d, not after %d", inst.ModifyIndex, state.Index())
	}
}

// TestRestartFromSnapshot: after a snapshot that compacts the log, a
// reopened node restores the snapshot and replays the entries after it.
func TestRestartFromSnapshot(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "solo", dir)
	cfg.Bootstrap = true
	cfg.TrailingLogs = 1 // compact (almost) everything the snapshot covers
	n, state := openNode(t, cfg)
	writeAll(t, n, 0, 10)
	f := n.raft.Snapshot()
	if err := f.Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	meta, _, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	snapIndex := meta.Index
	writeAll(t, n, 10, 15) // entries after the snapshot
	want := persisted(t, state)
	cfg.BindAddr = n.Addr()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// The log no longer holds the start: only the snapshot can supply it.
	db, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft", "raft.db"), BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := db.FirstIndex()
	last, _ := db.LastIndex()
	db.Close()
	if first <= 1 || first > snapIndex || last <= snapIndex {
		t.Fatalf("log holds [%d, %d], snapshot at %d: want the log compacted up to the snapshot and entries after it", first, last, snapIndex)
	}

	n2, state2 := openNode(t, cfg)
	if got := persisted(t, state2); string(got) != string(want) {
		t.Fatal("state after restart from snapshot differs from before")
	}
	if got := n2.Stats()["last_snapshot_index"]; got != strconv.FormatUint(snapIndex, 10) {
		t.Fatalf("last_snapshot_index = %s, want %d", got, snapIndex)
	}
}

func TestPingReportsNoLeader(t *testing.T) {
	// A node with state but no reachable peers: two-voter configuration
	// whose other voter never starts.
	dir := t.TempDir()
	cfg := testConfig(t, "a", dir)
	cfg.Bootstrap = true
	cfg.PingGrace = 500 * time.Millisecond
	n, _ := openNode(t, cfg)
	if err := n.raft.AddVoter("ghost", "127.0.0.1:1", 0, 0).Error(); err != nil && !errors.Is(err, raft.ErrLeadershipLost) {
		t.Logf("add ghost voter: %v", err) // cannot commit without the ghost; the leader steps down
	}
	testenv.WaitFor(t, 15*time.Second, "Ping to report no leader", func() error {
		if err := n.Ping(ctxT(t)); !errors.Is(err, ErrNoLeader) {
			return errors.New("Ping still healthy")
		}
		return nil
	})
	err := n.Ping(ctxT(t))
	if !strings.Contains(err.Error(), "grace 500ms") {
		t.Fatalf("Ping error %q does not say the grace", err)
	}
	var nl *NotLeaderError
	if _, err := n.Apply(ctxT(t), catalog.PutSetting("k", 1)); !errors.As(err, &nl) || nl.LeaderAddr != "" {
		t.Fatalf("Apply without a leader: %v, want a NotLeaderError with no leader", err)
	}

	// Reopening a node with peers and no quorum times out with a clear error.
	cfg.BindAddr = n.Addr()
	n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = New(cfg, catalog.NewState()).Open(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no raft leader") {
		t.Fatalf("Open without quorum: %v", err)
	}
}
