// Package store defines the hub's high-volume append data: the audit log
// (a hash chain), the AI decision log, the edge sync ledger with its
// per-(edge, stream) watermarks and the synced vectors, workflow
// checkpoints, and metric samples.
//
// It owns the Store interface, the row types, the input rules every
// implementation enforces (the Validate methods), and the sentinel errors.
// It does not own a database: the one SQL implementation lives in
// hub/store/internal/sqlstore, and the packages that open each database
// and supply its dialect are hub/store/sqlite (the embedded default) and
// hub/store/postgres; package store imports none of them. The contract both must meet is written
// down in DESIGN.md and proved by the shared suite in hub/store/storetest.
//
// Control-plane state (instances, users, deployments) is not here; it lives
// in the Raft catalog (hub/catalog).
package store
