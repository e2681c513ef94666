// Package regions is the control plane's region topology: the regions, the
// hubs serving each (API URL and Raft address), each region's data-store and
// Redis endpoints, where a region's instances fail over to, and placement
// rules. It parses the topology from the hub's JSON config and validates it,
// reporting every mistake at once.
//
// It owns the shape of the topology and its consistency rules. It does not
// probe hubs (package router does), nor decide Raft membership (hub/cluster
// does), and it imports nothing of the project's. See DESIGN.md.
package regions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
)

// Placement policies: a pinned instance runs only in its region; a
// failover instance is rescheduled into the nearest healthy region when
// every hub of its region is down.
const (
	PolicyPinned   = "pinned"
	PolicyFailover = "failover"
)

// Topology is the whole region layout. The hub's JSON config carries it
// under "topology".
type Topology struct {
	Regions   []Region `json:"regions"`
	Hubs      []Hub    `json:"hubs"`
	Placement []Rule   `json:"placement,omitempty"`
}

// Region is one region and its shared endpoints.
type Region struct {
	Name string `json:"name"`
	// Store is the region's read replica of the shared PostgreSQL
	// (postgres://…, comma-separated for several): the hubs of the region
	// send the reads that may be stale there unless they have
	// --store-replicas (hub.Config.ReadReplicas). Empty, or the hub's own
	// --store, means none.
	Store string `json:"store,omitempty"`
	// Redis is the region's coordination URL (redis://…); empty means the
	// hub's own --redis.
	Redis string `json:"redis,omitempty"`
	// FailoverTo lists the regions this region's failover instances move
	// to, preferred first; empty means the nearest healthy region by RTT.
	FailoverTo []string `json:"failover_to,omitempty"`
}

// Hub is one regional hub.
type Hub struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	// API is the hub's base URL (http://host:port) that clients and other
	// hubs use.
	API string `json:"api"`
	// Raft is the host:port other hubs' Raft transports dial.
	Raft string `json:"raft,omitempty"`
}

// Rule places instances whose name matches Match (a path.Match glob) in
// Region with Policy.
type Rule struct {
	Match  string `json:"match"`
	Region string `json:"region"`
	Policy string `json:"policy"`
}

// FieldError is one mistake in a topology, located by a JSON-ish path
// such as hubs[2].region.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return "topology: " + e.Field + ": " + e.Message }

// Parse decodes a topology from JSON, refusing unknown fields, and
// validates it. The error joins every *FieldError found.
func Parse(data []byte) (Topology, error) {
	var t Topology
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Topology{}, fmt.Errorf("topology: %w", err)
	}
	return t, t.Validate()
}

var regionName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)

// Validate returns every mistake in t at once (joined *FieldErrors), or
// nil: region names missing, malformed or duplicated; hubs without an ID,
// duplicated by ID, API URL or Raft address, or naming an unknown region;
// regions with no hub; failover targets and placement rules naming unknown
// regions or policies.
func (t Topology) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	known := map[string]bool{}
	for i, r := range t.Regions {
		f := fmt.Sprintf("regions[%d].name", i)
		switch {
		case r.Name == "":
			bad(f, "required")
		case !regionName.MatchString(r.Name):
			bad(f, "%q must be lowercase letters, digits or '-' (e.g. eu-west)", r.Name)
		case known[r.Name]:
			bad(f, "duplicate region %q", r.Name)
		}
		known[r.Name] = true
	}
	if len(t.Regions) == 0 {
		bad("regions", "at least one region is required")
	}
	t.validateHubs(known, bad)
	for i, r := range t.Regions {
		for j, to := range r.FailoverTo {
			f := fmt.Sprintf("regions[%d].failover_to[%d]", i, j)
			switch {
			case !known[to]:
				bad(f, "unknown region %q", to)
			case to == r.Name:
				bad(f, "region %q cannot fail over to itself", to)
			}
		}
	}
	for i, p := range t.Placement {
		if _, err := path.Match(p.Match, ""); err != nil || p.Match == "" {
			bad(fmt.Sprintf("placement[%d].match", i), "%q is not a name pattern such as \"billing-*\"", p.Match)
		}
		if !known[p.Region] {
			bad(fmt.Sprintf("placement[%d].region", i), "unknown region %q", p.Region)
		}
		if p.Policy != PolicyPinned && p.Policy != PolicyFailover {
			bad(fmt.Sprintf("placement[%d].policy", i), "%q is not %s or %s", p.Policy, PolicyPinned, PolicyFailover)
		}
	}
	return errors.Join(errs...)
}

func (t Topology) validateHubs(known map[string]bool, bad func(string, string, ...any)) {
	ids, apis, rafts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	served := map[string]bool{}
	for i, h := range t.Hubs {
		f := func(name string) string { return fmt.Sprintf("hubs[%d].%s", i, name) }
		switch {
		case h.ID == "":
			bad(f("id"), "required")
		case ids[h.ID]:
			bad(f("id"), "duplicate hub %q", h.ID)
		}
		ids[h.ID] = true
		if !known[h.Region] {
			bad(f("region"), "hub %q names unknown region %q (add it to regions)", h.ID, h.Region)
		}
		served[h.Region] = true
		switch {
		case h.API == "":
			bad(f("api"), "required (the hub's base URL, e.g. http://10.0.0.1:3000)")
		case apis[h.API]:
			bad(f("api"), "duplicate hub address %q", h.API)
		}
		apis[h.API] = true
		if h.Raft != "" && rafts[h.Raft] {
			bad(f("raft"), "duplicate raft address %q", h.Raft)
		}
		rafts[h.Raft] = true
	}
	for i, r := range t.Regions {
		if r.Name != "" && !served[r.Name] {
			bad(fmt.Sprintf("regions[%d]", i), "region %q has no hub", r.Name)
		}
	}
}

// Region returns the region called name.
func (t Topology) Region(name string) (Region, bool) {
	i := slices.IndexFunc(t.Regions, func(r Region) bool { return r.Name == name })
	if i < 0 {
		return Region{}, false
	}
	return t.Regions[i], true
}

// HubsIn returns the hubs of region, in configured order.
func (t Topology) HubsIn(region string) []Hub {
	var out []Hub
	for _, h := range t.Hubs {
		if h.Region == region {
			out = append(out, h)
		}
	}
	return out
}

// Hub returns the hub with the given ID.
func (t Topology) Hub(id string) (Hub, bool) {
	i := slices.IndexFunc(t.Hubs, func(h Hub) bool { return h.ID == id })
	if i < 0 {
		return Hub{}, false
	}
	return t.Hubs[i], true
}

// PlacementFor returns the first rule matching instance name, or false.
func (t Topology) PlacementFor(name string) (Rule, bool) {
	for _, p := range t.Placement {
		if ok, _ := path.Match(p.Match, name); ok {
			return p, true
		}
	}
	return Rule{}, false
}
