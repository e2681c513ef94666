package nodered

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// DiffNode names one node of a flows diff.
type DiffNode struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name,omitempty"` // its name, or a tab's label
	Flow string `json:"flow,omitempty"` // the tab or subflow it is on (z)
	// Fields are the properties that changed (changed nodes only).
	Fields []string `json:"fields,omitempty"`
}

// FlowsDiff is what changed from one flows document to another, node by
// node (matched by id), in document order.
type FlowsDiff struct {
	Added   []DiffNode `json:"added"`
	Changed []DiffNode `json:"changed"`
	Removed []DiffNode `json:"removed"`
}

// DiffFlows compares two flows documents (JSON arrays of nodes). A node is
// changed when any of its properties differs, position included; the
// properties are listed. Errors: ErrInvalidFlows for a document that is
// not an array of nodes with ids.
func DiffFlows(from, to []byte) (FlowsDiff, error) {
	a, order, err := nodesByID(from)
	if err != nil {
		return FlowsDiff{}, fmt.Errorf("from: %w", err)
	}
	b, toOrder, err := nodesByID(to)
	if err != nil {
		return FlowsDiff{}, fmt.Errorf("to: %w", err)
	}
	d := FlowsDiff{Added: []DiffNode{}, Changed: []DiffNode{}, Removed: []DiffNode{}}
	for _, id := range toOrder {
		n := b[id]
		old, ok := a[id]
		if !ok {
			d.Added = append(d.Added, describe(n))
			continue
		}
		if fields := changedFields(old, n); len(fields) > 0 {
			dn := describe(n)
			dn.Fields = fields
			d.Changed = append(d.Changed, dn)
		}
	}
	for _, id := range order {
		if _, ok := b[id]; !ok {
			d.Removed = append(d.Removed, describe(a[id]))
		}
	}
	return d, nil
}

func nodesByID(doc []byte) (map[string]map[string]any, []string, error) {
	var nodes []map[string]any
	if err := json.Unmarshal(doc, &nodes); err != nil {
		return nil, nil, &FlowError{Index: -1, Message: "must be a JSON array of nodes: " + err.Error()}
	}
	out := make(map[string]map[string]any, len(nodes))
	order := make([]string, 0, len(nodes))
	for i, n := range nodes {
		id, _ := n["id"].(string)
		if id == "" {
			return nil, nil, &FlowError{Index: i, Message: "has no id"}
		}
		if _, dup := out[id]; !dup {
			order = append(order, id)
		}
		out[id] = n
	}
	return out, order, nil
}

func describe(n map[string]any) DiffNode {
	d := DiffNode{}
	d.ID, _ = n["id"].(string)
	d.Type, _ = n["type"].(string)
	d.Flow, _ = n["z"].(string)
	if name, _ := n["name"].(string); name != "" {
		d.Name = name
	} else if label, _ := n["label"].(string); label != "" {
		d.Name = label
	}
	return d
}

func changedFields(a, b map[string]any) []string {
	var fields []string
	for k, v := range b {
		if ov, ok := a[k]; !ok || !reflect.DeepEqual(ov, v) {
			fields = append(fields, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	return fields
}
