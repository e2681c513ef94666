package deploy

import (
	"encoding/json"
	"strings"
	"sync"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/instances"
)

// Topic rules of a runtime on the hub's bus (BrokerAuth.Allow). A runtime
// authenticates as its catalog row (username = row id) and may:
//   - read its row's own topics: {row}/control, {row}/in and below
//     (directly or through the row's shared subscription group
//     $share/{row}/…), {row}/checkpoints/replay;
//   - write its row's topics: {row}/… (acks and anything below its name)
//     and redforge/out/{logical} and below (replies);
//   - read and write the topics its flows declare: the topic of every
//     mqtt in (read) and mqtt out (write) node on the hub broker in the
//     row's catalog flows, after the hub's substitutions.
//
// Nothing else: not '#', not another row's topics, not $SYS.

// ACLSource is what the topic rules read: the row and its flows.
type ACLSource interface {
	Instance(id string) (catalog.Instance, error)
	InstanceFlows(id string) (catalog.Flows, error)
}

// rowTopics are a row's allowed filters.
type rowTopics struct {
	sha          string // the flows they were computed from
	read, writes []string
}

// aclCache keeps each row's allowed filters until its flows change.
type aclCache struct {
	mu   sync.Mutex
	rows map[string]rowTopics
}

// topicsOf returns the filters row may read and write.
func (c *aclCache) topicsOf(src ACLSource, rowID string) (rowTopics, bool) {
	row, err := src.Instance(rowID)
	if err != nil {
		return rowTopics{}, false
	}
	f, _ := src.InstanceFlows(rowID)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rows == nil {
		c.rows = map[string]rowTopics{}
	}
	if t, ok := c.rows[rowID]; ok && t.sha == f.SHA {
		return t, true
	}
	t := rowTopics{sha: f.SHA}
	n, logical := row.Name, instances.LogicalName(row.Name)
	t.read = []string{ControlTopic(n), InTopic(n), InTopic(n) + "/#", ReplayTopic(n)}
	t.writes = []string{n + "/#", OutputPrefix + logical, OutputPrefix + logical + "/#"}
	in, out := declaredTopics(f.Doc, row)
	t.read = append(t.read, in...)
	t.writes = append(t.writes, out...)
	c.rows[rowID] = t
	return t, true
}

// declaredTopics lists the topics of the mqtt in and mqtt out nodes of a
// flows document that use the hub broker, with the hub's substitutions.
func declaredTopics(doc []byte, row catalog.Instance) (in, out []string) {
	if len(doc) == 0 {
		return nil, nil
	}
	s := strings.ReplaceAll(string(doc), "${REDFORGE_INSTANCE}", row.Name)
	s = strings.ReplaceAll(s, "${REDFORGE_LOGICAL}", instances.LogicalName(row.Name))
	var nodes []map[string]any
	if json.Unmarshal([]byte(s), &nodes) != nil {
		return nil, nil
	}
	hub := map[string]bool{}
	for _, n := range nodes {
		if n["type"] == "mqtt-broker" && n["broker"] == HubBroker {
			if id, ok := n["id"].(string); ok {
				hub[id] = true
			}
		}
	}
	for _, n := range nodes {
		b, _ := n["broker"].(string)
		t, _ := n["topic"].(string)
		if !hub[b] || t == "" || strings.HasPrefix(t, "$") {
			continue
		}
		switch n["type"] {
		case "mqtt in":
			in = append(in, t)
		case "mqtt out":
			out = append(out, t)
		}
	}
	return in, out
}

// Allow implements broker.ACL: see the topic rules above. A subscription
// filter must lie within an allowed filter; a shared subscription is
// judged by its topic filter and may only join the row's own group.
func (a BrokerAuth) Allow(username, topic string, write bool) bool {
	if a.Topics == nil || username == "" {
		return false
	}
	t, ok := a.acl.topicsOf(a.Topics, username)
	if !ok {
		return false
	}
	if group, filter, shared := splitShared(topic); shared {
		row, err := a.Topics.Instance(username)
		if err != nil || group != row.Name || write {
			return false
		}
		topic = filter
	}
	if strings.HasPrefix(topic, "$") {
		return false
	}
	allowed := t.read
	if write {
		allowed = t.writes
	}
	for _, f := range allowed {
		if filterWithin(topic, f) {
			return true
		}
	}
	return false
}

// splitShared splits "$share/{group}/{filter}".
func splitShared(topic string) (group, filter string, ok bool) {
	rest, ok := strings.CutPrefix(topic, "$share/")
	if !ok {
		return "", "", false
	}
	group, filter, ok = strings.Cut(rest, "/")
	return group, filter, ok && group != "" && filter != ""
}

// filterWithin reports whether every topic that sub matches is matched by
// within (a concrete topic is a filter matching itself).
func filterWithin(sub, within string) bool {
	s, w := strings.Split(sub, "/"), strings.Split(within, "/")
	for i, lw := range w {
		if lw == "#" {
			return true
		}
		if i >= len(s) {
			return false
		}
		ls := s[i]
		switch {
		case ls == "#":
			return false // sub reaches deeper than within at this level
		case lw == "+":
			continue
		case ls == "+" || ls != lw:
			return false
		}
	}
	return len(s) == len(w)
}
