// Package cluster owns the hub's Raft node: hashicorp/raft with a
// raft-boltdb log and stable store (<data-dir>/raft/raft.db), file snapshots
// and a TCP transport; bootstrap of a one-node cluster, joining and removing
// servers, and the FSM that feeds committed log entries to the catalog.
//
// Writes go through Node.Apply, which on the leader commits a catalog
// Command and returns its application result, and on a follower returns
// ErrNotLeader (or hands the command to the configured Forwarder). Reads are
// served from the local catalog.State: stale by default, linearizable after
// ConsistentRead.
//
// The package does not own the state itself (hub/catalog does), nor the
// HTTP forwarding of writes to the leader or the multi-region membership
// logic, which plug in through Forwarder, Join and Remove. See DESIGN.md for
// the invariants and the tests that prove them.
package cluster
