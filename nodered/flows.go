package nodered

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrInvalidFlows is wrapped by every ValidateFlows error.
var ErrInvalidFlows = errors.New("invalid flows")

// FlowError names the node (by index and id) at fault in a flows document.
type FlowError struct {
	Index   int    // position in the array, -1 for the document itself
	NodeID  string // the node's id when it has one
	Message string
}

func (e *FlowError) Error() string {
	switch {
	case e.Index < 0:
		return "flows: " + e.Message
	case e.NodeID != "":
		return fmt.Sprintf("flows[%d] (node %q): %s", e.Index, e.NodeID, e.Message)
	default:
		return fmt.Sprintf("flows[%d]: %s", e.Index, e.Message)
	}
}

func (e *FlowError) Unwrap() error { return ErrInvalidFlows }

// node is the part of a Node-RED node that validation reads.
type node struct {
	ID    *string          `json:"id"`
	Type  *string          `json:"type"`
	Z     string           `json:"z"`
	Wires *json.RawMessage `json:"wires"`
}

// MaxFlowNodes bounds the size of one flows document.
const MaxFlowNodes = 20000

// ValidateFlows checks a flows document before anything is deployed: a
// JSON array of objects, each with a non-empty string id and type, ids
// unique, wires a list of lists of ids present in the document, z (the
// tab) an id present in the document. It returns the nodes unchanged.
func ValidateFlows(doc []byte) ([]json.RawMessage, error) {
	doc = bytes.TrimSpace(doc)
	if len(doc) == 0 || doc[0] != '[' {
		return nil, &FlowError{Index: -1, Message: "must be a JSON array of nodes"}
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, &FlowError{Index: -1, Message: "not valid JSON: " + err.Error()}
	}
	if len(raw) > MaxFlowNodes {
		return nil, &FlowError{Index: -1, Message: fmt.Sprintf("has %d nodes; at most %d are allowed", len(raw), MaxFlowNodes)}
	}
	nodes := make([]node, len(raw))
	ids := make(map[string]int, len(raw))
	for i, r := range raw {
		if t := bytes.TrimSpace(r); len(t) == 0 || t[0] != '{' {
			return nil, &FlowError{Index: i, Message: "is not a JSON object"}
		}
		if err := json.Unmarshal(r, &nodes[i]); err != nil {
			return nil, &FlowError{Index: i, Message: "has a field of the wrong type: " + err.Error()}
		}
		n := nodes[i]
		if n.ID == nil || *n.ID == "" {
			return nil, &FlowError{Index: i, Message: "has no id"}
		}
		if n.Type == nil || *n.Type == "" {
			return nil, &FlowError{Index: i, NodeID: *n.ID, Message: "has no type"}
		}
		if j, dup := ids[*n.ID]; dup {
			return nil, &FlowError{Index: i, NodeID: *n.ID, Message: fmt.Sprintf("duplicates the id of flows[%d]", j)}
		}
		ids[*n.ID] = i
	}
	for i, n := range nodes {
		if n.Z != "" {
			if _, ok := ids[n.Z]; !ok {
				return nil, &FlowError{Index: i, NodeID: *n.ID, Message: fmt.Sprintf("is on tab %q, which is not in the flows", n.Z)}
			}
		}
		if n.Wires == nil {
			continue
		}
		var wires [][]string
		if err := json.Unmarshal(*n.Wires, &wires); err != nil {
			return nil, &FlowError{Index: i, NodeID: *n.ID, Message: "wires must be a list of lists of node ids"}
		}
		for _, port := range wires {
			for _, to := range port {
				if _, ok := ids[to]; !ok {
					return nil, &FlowError{Index: i, NodeID: *n.ID, Message: fmt.Sprintf("is wired to unknown node %q", to)}
				}
			}
		}
	}
	return raw, nil
}
