package catalog

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Region is a region known to the control plane and the hubs serving it.
// Instances and edges name a region, but the catalog does not require it to
// be registered: regions come from the topology config (package regions) and
// a single hub registers none.
type Region struct {
	Name string   `json:"name"`
	Hubs []string `json:"hubs,omitempty"` // hub API addresses (host:port)
	Indexes
}

func (r *Region) primaryKey() string { return r.Name }

func (r *Region) clone() *Region {
	c := *r
	c.Hubs = slices.Clone(r.Hubs)
	return &c
}

func regionsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableRegions, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("Name"),
	}}
}

func checkRegion(_ *write, r *Region) error {
	if r.Name == "" {
		return fmt.Errorf("region: name is required: %w", ErrInvalid)
	}
	return nil
}

// PutRegion returns the command that creates or replaces a region.
// Errors: ErrInvalid without a name; ErrConflict when an IfIndex check fails.
// The result is the stored Region.
func PutRegion(r Region, opts ...PutOption) Command {
	return newPut(CmdPutRegion, r, opts)
}

func applyPutRegion(w *write, b putBody[Region]) (any, error) {
	r := &b.Row
	old := first[Region](w.tx, nil, tableRegions, "id", r.Name)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put region %q: %w", r.Name, err)
	}
	if err := checkRegion(w, r); err != nil {
		return nil, fmt.Errorf("put region: %w", err)
	}
	return insert(w, tableRegions, r, old)
}

// DeleteRegion returns the command that deletes a region. Errors: ErrNotFound.
func DeleteRegion(name string) Command {
	return newCommand(CmdDeleteRegion, keyBody{Key: name})
}

func applyDeleteRegion(w *write, b keyBody) (any, error) {
	r := first[Region](w.tx, nil, tableRegions, "id", b.Key)
	if r == nil {
		return nil, fmt.Errorf("delete region %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableRegions, r)
	return nil, nil
}

// Region returns the region with the given name, or ErrNotFound.
func (s *State) Region(name string) (Region, error) {
	return get[Region](s.read(nil), nil, tableRegions, name)
}

// Regions returns every region, ordered by name.
func (s *State) Regions() []Region {
	return list[Region](s.read(nil), nil, tableRegions, "id")
}
