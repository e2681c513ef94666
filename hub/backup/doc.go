// Package backup makes and restores consistent backups of a hub cluster:
// one archive holding the catalog snapshot (users, roles, tokens,
// instances, allocations, deployments, settings, flows), the data store
// (the audit chain with its head, AI decisions, flows versions, metric
// samples, vectors, checkpoints), and a manifest of every file's SHA-256.
// It owns the archive format, the destinations archives go to (a local or
// mounted directory, an S3-compatible bucket), schedules and retention,
// verification, restore into an empty data dir and store, the Git mirror
// of deployed flows (gitflows.go), configuration export and import
// (config.go) and PostgreSQL point-in-time recovery (pitr.go). It does not
// own the catalog's or the store's formats; it carries them. Invariants
// and the tests that prove them are in DESIGN.md.
package backup
