package catalog

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Indexes records the Raft indexes that created a row and that last changed
// it. The catalog sets them on every write; values sent in commands are
// ignored.
type Indexes struct {
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

func (ix *Indexes) indexes() *Indexes { return ix }

// row is the constraint shared by the pointer types stored in memdb.
type row[T any] interface {
	*T
	indexes() *Indexes
	primaryKey() string
	clone() *T
}

// keyed is what uniqueness checks need from a stored object.
type keyed interface{ primaryKey() string }

// Table names. tableOrder is the order in which snapshots write tables and
// restores read them: a table comes after the tables its rows refer to.
const (
	tableRegions          = "regions"
	tableSettings         = "settings"
	tableUsers            = "users"
	tableInstances        = "instances"
	tableDeployments      = "deployments"
	tableAPITokens        = "api_tokens"
	tableEdges            = "edges"
	tableEnrollmentTokens = "enrollment_tokens"
	tableHubs             = "hubs"
	tableAllocations      = "allocations"
	tableFlows            = "flows"
	tableCredentials      = "credentials"
	tableMoves            = "moves"
	// Once settings: authstate.go, specs.go, anchors.go, edgeconfigs.go.
	tableSigningKeys        = "signing_keys"
	tableRefreshTokens      = "refresh_tokens"
	tableRevokedTokens      = "revoked_tokens"
	tableRevokedSessions    = "revoked_sessions"
	tableSessionGenerations = "session_generations"
	tableDeploymentSpecs    = "deployment_specs"
	tableAuditAnchors       = "audit_anchors"
	tableEdgeConfigs        = "edge_configs"
	tableGreenLogs          = "green_logs"
	tableSnapshots          = "snapshots"
	tableLLMProviders       = "llm_providers"
	tableModels             = "models"
	tableLLMRoutes          = "llm_routes"
	tableLLMBudgets         = "llm_budgets"
	tableBenchmarks         = "benchmarks"
	tableIndex              = "index"
)

var tableOrder = []string{
	tableRegions, tableSettings, tableUsers, tableInstances, tableDeployments,
	tableAPITokens, tableEdges, tableEnrollmentTokens, tableHubs, tableAllocations,
	tableFlows, tableCredentials, tableMoves, tableAlertRules, tableAlerts, tableSnapshots,
	tableLLMProviders, tableModels, tableLLMRoutes, tableLLMBudgets, tableBenchmarks,
	tableSigningKeys, tableRefreshTokens, tableRevokedTokens, tableRevokedSessions,
	tableSessionGenerations, tableDeploymentSpecs, tableAuditAnchors, tableEdgeConfigs,
	tableGreenLogs, tableIndex,
}

func schema() *memdb.DBSchema {
	tables := []*memdb.TableSchema{
		regionsTable(), settingsTable(), usersTable(), instancesTable(),
		deploymentsTable(), apiTokensTable(), edgesTable(),
		enrollmentTokensTable(), hubsTable(), allocationsTable(), flowsTable(),
		credentialsTable(), movesTable(), alertRulesTable(), alertsTable(), snapshotsTable(), indexTable(),
		llmProvidersTable(), modelsTable(), llmRoutesTable(), llmBudgetsTable(), benchmarksTable(),
		signingKeysTable(), refreshTokensTable(), revocationsTable(tableRevokedTokens),
		revocationsTable(tableRevokedSessions), sessionGenerationsTable(),
		deploymentSpecsTable(), auditAnchorsTable(), edgeConfigsTable(), greenLogsTable(),
	}
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, t := range tables {
		s.Tables[t.Name] = t
	}
	return s
}

// idIndex is the primary index on a string field.
func idIndex(field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: field}}
}

// uniqueIndex is a case-insensitive unique secondary index. memdb does not
// enforce uniqueness on secondary indexes: writers call write.unique first.
func uniqueIndex(name, field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Unique: true, Indexer: &memdb.StringFieldIndex{Field: field, Lowercase: true}}
}

// refIndex is a non-unique index on an optional string field.
func refIndex(name, field string) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: field}}
}

// mustBeOK panics on a memdb error that can only come from a schema bug
// (an unknown table or index, a wrong argument type); tests catch those.
func mustBeOK(err error) {
	if err != nil {
		panic(fmt.Sprintf("catalog: bug: %v", err))
	}
}

// first returns the stored row matching the index lookup, or nil.
func first[T any, P row[T]](tx *memdb.Txn, ws memdb.WatchSet, table, index string, args ...any) P {
	ch, obj, err := tx.FirstWatch(table, index, args...)
	mustBeOK(err)
	if ws != nil {
		ws.Add(ch)
	}
	if obj == nil {
		return nil
	}
	return obj.(P)
}

// list returns copies of every row matching the index lookup, in index order.
func list[T any, P row[T]](tx *memdb.Txn, ws memdb.WatchSet, table, index string, args ...any) []T {
	it, err := tx.Get(table, index, args...)
	mustBeOK(err)
	if ws != nil {
		ws.Add(it.WatchCh())
	}
	out := []T{}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		out = append(out, *obj.(P).clone())
	}
	return out
}

// get returns a copy of the row with the given primary key, or ErrNotFound.
func get[T any, P row[T]](tx *memdb.Txn, ws memdb.WatchSet, table, key string) (T, error) {
	var zero T
	r := first[T, P](tx, ws, table, "id", key)
	if r == nil {
		return zero, fmt.Errorf("%s %q: %w", singular(table), key, ErrNotFound)
	}
	return *r.clone(), nil
}

func singular(table string) string {
	switch table {
	case tableIndex:
		return "index"
	case tableEnrollmentTokens:
		return "enrollment token"
	case tableAPITokens:
		return "api token"
	case tableFlows:
		return "flows"
	case tableCredentials:
		return "credentials"
	case tableAlertRules:
		return "alert rule"
	case tableAlerts:
		return "alert"
	case tableLLMProviders:
		return "llm provider"
	case tableLLMRoutes:
		return "llm route"
	case tableLLMBudgets:
		return "llm budget"
	case tableGreenLogs:
		return "green logs of deployment"
	}
	return table[:len(table)-1]
}
