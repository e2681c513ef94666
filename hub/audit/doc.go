// Package audit owns the hub's audit trail: who did what, when, from where.
//
// Logger.Record appends an Entry (user, action, resource, details, IP,
// user agent) to the audit log kept by hub/store, as a hash chain: each
// record carries the hash of the one before, and its own hash covers its
// content and that link (HashRecord, versioned "v1:"; details in RFC 8785
// canonical form, see Canonicalize). Verify re-reads the chain and names
// the first broken link, so an edited, deleted or reordered row is found;
// with an anchor store (Config.Anchors, the Raft catalog) Anchor pins the
// chain head outside the database, so a truncated or wholly rewritten log
// is found too. Export streams the log as CSV or JSON with every record's
// prev_hash and hash and the chain head, and VerifyExport re-checks such a
// file offline (towerctl audit verify FILE). The AI decision log
// (RecordAIDecisions, AIDecisions) is validated here and stored by
// hub/store.
//
// The package does not decide what is audited or map errors to HTTP
// (hub/api calls Record for every mutating action), does not own the
// tables or their SQL (hub/store), and does not authenticate anyone
// (hub/auth). DESIGN.md specifies the hash precisely enough for an auditor
// to re-implement verification, and lists the invariants and their tests.
package audit
