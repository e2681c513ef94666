// Package migrate loads the embedded, numbered SQL migrations of a store
// implementation and checks their order. Applying them is left to each
// implementation, inside its own transaction.
package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/redforge/controltower/hub/store"
)

// Migration is one schema step.
type Migration struct {
	Version int    // from the file name, 1-based
	Name    string // the file name
	SQL     string
}

var fileRE = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// Load reads the migrations in dir of fsys. Every file must be named
// NNNN_name.sql, and the versions must run 1, 2, … without gaps or
// duplicates.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions must run 1, 2, … without gaps)", m.Name, m.Version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	return ms, nil
}

// Pending returns the migrations above current. It fails with an error
// wrapping store.ErrSchemaTooNew if current is above the latest known
// version.
func Pending(ms []Migration, current int) ([]Migration, error) {
	latest := len(ms)
	if current > latest {
		return nil, fmt.Errorf("%w: database is at schema version %d, this binary knows up to %d; upgrade redforge-hub or use another database",
			store.ErrSchemaTooNew, current, latest)
	}
	return ms[current:], nil
}
