package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Archive format versions. Format 1 is the first; a reader refuses a
// newer one, naming both versions.
const (
	FormatVersion = 1
)

// Names of the entries of an archive, in the order they are written.
const (
	entryHeader   = "backup.json"  // first: the Header, so a reader can refuse early
	entryCatalog  = "catalog.snap" // the catalog snapshot (hub/catalog format)
	entryKey      = "secrets.key"  // the sealing key, only when asked for and encrypted
	entrySQLite   = "store/sqlite.db"
	entryPGPrefix = "store/pg/"     // store/pg/<table>.<chunk>.copy: binary COPY chunks
	entryManifest = "manifest.json" // last: every other entry's checksum
)

// Store kinds an archive can hold.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// ErrCorrupt is returned for an archive that fails a check: a checksum, a
// size, a missing or unexpected entry, a truncated stream, a wrong age key.
// The message names the entry at fault.
var ErrCorrupt = errors.New("backup: archive is corrupt")

// ErrFormat is returned for an archive of a format version this binary
// does not read; the message names both versions.
var ErrFormat = errors.New("backup: unsupported archive format")

// ErrNotEmpty is returned by Restore for a target data dir or store that
// already holds data; the message names it.
var ErrNotEmpty = errors.New("backup: restore target is not empty")

// ErrKeyMismatch is returned by Restore when the secrets key at the target
// is not the one the archive's secrets were sealed with.
var ErrKeyMismatch = errors.New("backup: secrets key mismatch")

// Header is the first entry of an archive: what made it and when.
type Header struct {
	Format     int       `json:"format"`
	ID         string    `json:"id"` // the archive's name without extension
	HubVersion string    `json:"hub_version"`
	HubID      string    `json:"hub_id"` // the hub (leader) that made it
	Region     string    `json:"region,omitempty"`
	Created    time.Time `json:"created"`
	StoreKind  string    `json:"store_kind"`
	KeyID      string    `json:"key_id"` // secrets.Sealer.KeyID of the sealing key
	HasKey     bool      `json:"has_key,omitempty"`
}

// FileEntry is one entry of an archive as the manifest lists it.
type FileEntry struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// StorePosition is where the store stood when it was copied: the audit
// chain's head and every table's row count.
type StorePosition struct {
	SchemaVersion int              `json:"schema_version"`
	AuditHeadID   int64            `json:"audit_head_id"`
	AuditHeadHash string           `json:"audit_head_hash,omitempty"`
	Rows          map[string]int64 `json:"rows"`
	// Tables are the copied PostgreSQL tables with their columns, in
	// restore order; Sequences their sequences' values.
	Tables    []TableCopy     `json:"tables,omitempty"`
	Sequences []SequenceValue `json:"sequences,omitempty"`
}

// TableCopy is one PostgreSQL table in an archive.
type TableCopy struct {
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
	Chunks  int      `json:"chunks"`
}

// SequenceValue is a PostgreSQL sequence's state at the copy.
type SequenceValue struct {
	Name     string `json:"name"`
	Value    int64  `json:"value"`
	IsCalled bool   `json:"is_called"`
}

// Manifest is the last entry of an archive: the header again, where the
// catalog and the store stood (taken together, see Create), and every
// other entry's size and SHA-256.
type Manifest struct {
	Header
	CatalogIndex uint64        `json:"catalog_index"`
	Catalog      CatalogCounts `json:"catalog"`
	Store        StorePosition `json:"store"`
	Files        []FileEntry   `json:"files"`
	Duration     float64       `json:"duration_seconds"`
}

// CatalogCounts counts what the catalog snapshot holds.
type CatalogCounts struct {
	Users       int `json:"users"`
	Instances   int `json:"instances"`
	Deployments int `json:"deployments"`
	Tokens      int `json:"api_tokens"`
	Edges       int `json:"edges"`
	Settings    int `json:"settings"`
}

func decodeHeader(b []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: %s: %v", ErrCorrupt, entryHeader, err)
	}
	if h.Format < 1 {
		return h, fmt.Errorf("%w: %s: format %d", ErrCorrupt, entryHeader, h.Format)
	}
	if h.Format > FormatVersion {
		return h, fmt.Errorf("%w: the archive is format %d, this hub reads up to format %d; restore it with hub %s or newer",
			ErrFormat, h.Format, FormatVersion, h.HubVersion)
	}
	return h, nil
}
