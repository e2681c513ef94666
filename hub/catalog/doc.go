// Package catalog owns the hub's control-plane state: instances and their
// desired state, deployments and their phase, users, API tokens, edges,
// enrollment tokens, regions and settings.
//
// The state lives in a go-memdb store (State) that changes only through typed,
// versioned commands (Command, built by constructors such as UpsertInstance
// and applied by State.Apply), so that every hub applying the same Raft log
// reaches the same state. Apply is deterministic: it reads no clock and draws
// no randomness; timestamps and ids travel inside the commands. Every row
// records the Raft index that created it and the one that last changed it
// (Indexes). Reads return copies; the Watch variants also return a channel
// that is closed when the result may have changed, for blocking queries and
// live updates. Snapshots (State.Snapshot, State.Restore) encode every table
// in a versioned format.
//
// The catalog enforces uniqueness (ids, instance and edge names, usernames,
// token hashes) and existence (a deployment's instance, a token's user), and
// reports failures with ErrNotFound, ErrConflict or ErrInvalid, wrapped with
// context. It does not validate domain values (name syntax, resource ranges,
// enum spellings): hub/api does. It knows nothing of Raft: hub/cluster feeds
// it committed log entries and snapshots. See DESIGN.md for the invariants
// and the tests that prove them.
package catalog
