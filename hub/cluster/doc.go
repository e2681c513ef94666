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
// Several hubs form one group: JoinHub (voters spread over regions up to
// MaxVoters, then nonvoters) and a directory of hubs (HubInfo, kept as
// catalog settings) so a follower can find the leader's API.
// HTTPForwarder sends a follower's writes, read-index requests and
// membership changes to the leader's API with the cluster secret; Handler
// serves the leader's end. A follower's ConsistentRead asks the leader for
// a read index and waits to apply it. Staleness says how stale local reads
// may be. The leader removes servers silent for DeadServerTimeout.
//
// The package does not own the state itself (hub/catalog does), nor the
// routes of the public API (hub/api) or the region topology (regions). See
// DESIGN.md for the invariants and the tests that prove them.
package cluster
