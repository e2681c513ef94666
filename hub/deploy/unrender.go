package deploy

import (
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/instances"
)

// InjectCredentials gives nodes their credentials (node id → field →
// value) as Node-RED takes them in a deploy: a "credentials" property on
// the node. Nodes that already carry credentials (the hub bus broker,
// which Render wires) keep theirs; credentials of nodes no longer in the
// flows are dropped.
func InjectCredentials(nodes []json.RawMessage, creds map[string]map[string]any) ([]json.RawMessage, error) {
	if len(creds) == 0 {
		return nodes, nil
	}
	out := make([]json.RawMessage, 0, len(nodes))
	for _, raw := range nodes {
		var n map[string]any
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("flows: %w", err)
		}
		id, _ := n["id"].(string)
		if c, ok := creds[id]; ok && len(c) > 0 && n["credentials"] == nil {
			n["credentials"] = c
			b, err := json.Marshal(n)
			if err != nil {
				return nil, err
			}
			raw = b
		}
		out = append(out, raw)
	}
	return out, nil
}

// Unrender turns the flows a runtime of row runs after an editor deploy
// back into a document any runtime can be given (the inverse of Render
// where it can be told): cur is the row's catalog document before the
// deploy, edited what the runtime now runs. For a node that was in cur,
// each property the editor left as Render made it keeps cur's value (so
// "${REDFORGE_INSTANCE}", "redforge-hub" and the like survive); a changed
// string property of one that held "${REDFORGE_INSTANCE}" or
// "${REDFORGE_LOGICAL}" gets them back for the row's and the logical
// instance's names. For every node, an mqtt-broker at the hub bus
// (brokerAddr) becomes "redforge-hub" again, and on it an mqtt topic loses
// the row's shared-subscription prefix and names the row by its
// placeholder. Credentials are not part of a flows document.
func Unrender(cur []byte, row catalog.Instance, creds fleet.Creds, brokerAddr string, edited []json.RawMessage) ([]json.RawMessage, error) {
	rendered := map[string]map[string]any{}
	orig := map[string]map[string]any{}
	if len(cur) > 0 {
		rs, err := Render(cur, row, creds, brokerAddr)
		if err != nil {
			return nil, err
		}
		for _, raw := range rs {
			var n map[string]any
			if json.Unmarshal(raw, &n) == nil {
				if id, _ := n["id"].(string); id != "" {
					rendered[id] = n
				}
			}
		}
		var os []map[string]any
		if err := json.Unmarshal(cur, &os); err != nil {
			return nil, fmt.Errorf("flows: %w", err)
		}
		for _, n := range os {
			if id, _ := n["id"].(string); id != "" {
				orig[id] = n
			}
		}
	}
	nodes := make([]map[string]any, 0, len(edited))
	for _, raw := range edited {
		var n map[string]any
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("flows: %w", err)
		}
		nodes = append(nodes, n)
	}
	u := unrenderer{row: row.Name, logical: instances.LogicalName(row.Name), addr: brokerAddr, hubBrokers: map[string]bool{}}
	for _, n := range nodes {
		id, _ := n["id"].(string)
		o, r := orig[id], rendered[id]
		if o != nil && r != nil {
			for k, v := range n {
				if rv, ok := r[k]; ok && reflect.DeepEqual(rv, v) {
					if ov, ok := o[k]; ok {
						n[k] = ov
					}
				} else if os, ok := o[k].(string); ok {
					if s, ok := v.(string); ok {
						n[k] = u.placeholders(os, s)
					}
				}
			}
		}
		delete(n, "credentials")
		if u.isHubBroker(n) {
			u.hubBrokers[id] = true
		}
	}
	out := make([]json.RawMessage, 0, len(nodes))
	for _, n := range nodes {
		u.mqtt(n)
		b, err := json.Marshal(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

type unrenderer struct {
	row, logical, addr string
	hubBrokers         map[string]bool
}

// placeholders restores the placeholders orig had in the edited value s.
func (u unrenderer) placeholders(orig, s string) string {
	if strings.Contains(orig, "${REDFORGE_INSTANCE}") && u.row != "" {
		s = strings.ReplaceAll(s, u.row, "${REDFORGE_INSTANCE}")
	}
	if strings.Contains(orig, "${REDFORGE_LOGICAL}") && u.logical != "" && u.logical != u.row {
		s = strings.ReplaceAll(s, u.logical, "${REDFORGE_LOGICAL}")
	}
	return s
}

// isHubBroker reports whether n is an mqtt-broker at the hub bus (as
// Render wires one, or "redforge-hub" still), and makes it
// "redforge-hub" again.
func (u unrenderer) isHubBroker(n map[string]any) bool {
	if n["type"] != "mqtt-broker" {
		return false
	}
	if n["broker"] == HubBroker {
		return true
	}
	host, port, err := net.SplitHostPort(u.addr)
	if err != nil {
		return false
	}
	b, _ := n["broker"].(string)
	p := fmt.Sprint(n["port"])
	if f, ok := n["port"].(float64); ok {
		p = strconv.Itoa(int(f))
	}
	if b != host || p != port {
		return false
	}
	n["broker"], n["port"] = HubBroker, "1883"
	if n["clientid"] == ClientIDRef {
		n["clientid"] = ""
	}
	return true
}

// mqtt turns the topic of an mqtt node on a hub broker back into its
// placeholder form.
func (u unrenderer) mqtt(n map[string]any) {
	if n["type"] != "mqtt in" && n["type"] != "mqtt out" {
		return
	}
	if b, _ := n["broker"].(string); !u.hubBrokers[b] {
		return
	}
	t, _ := n["topic"].(string)
	t = strings.TrimPrefix(t, "$share/"+u.row+"/")
	switch {
	case t == u.row || strings.HasPrefix(t, u.row+"/"):
		t = "${REDFORGE_INSTANCE}" + strings.TrimPrefix(t, u.row)
	case t == OutputPrefix+u.logical:
		t = OutputPrefix + "${REDFORGE_LOGICAL}"
	}
	n["topic"] = t
}
