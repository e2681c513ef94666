package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// InjectMQTTCredentials returns flows where every "mqtt-broker" node that
// points at the edge's own broker (its broker host is one of hosts and its
// port is port) carries credentials {user, password} from cred(node id),
// which Node-RED stores in its credentials file on deploy. Other nodes are
// returned as they are. An mqtt-broker node's broker is a host name or an
// mqtt:// URL; its port defaults to 1883.
func InjectMQTTCredentials(flows []json.RawMessage, hosts []string, port string, cred func(nodeID string) (string, string)) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(flows))
	for i, raw := range flows {
		out[i] = raw
		var n map[string]any
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		id, _ := n["id"].(string)
		if n["type"] != "mqtt-broker" || id == "" || !pointsAt(n, hosts, port) {
			continue
		}
		user, pass := cred(id)
		n["credentials"] = map[string]string{"user": user, "password": pass}
		b, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", id, err)
		}
		out[i] = b
	}
	return out, nil
}

// pointsAt reports whether an mqtt-broker node connects to host:port of
// hosts and port.
func pointsAt(n map[string]any, hosts []string, port string) bool {
	broker, _ := n["broker"].(string)
	p := "1883"
	switch v := n["port"].(type) {
	case string:
		if v != "" {
			p = v
		}
	case float64:
		p = strconv.Itoa(int(v))
	}
	host := broker
	if strings.Contains(broker, "://") {
		u, err := url.Parse(broker)
		if err != nil {
			return false
		}
		host = u.Hostname()
		if u.Port() != "" {
			p = u.Port()
		}
	} else if h, pp, err := net.SplitHostPort(broker); err == nil {
		host, p = h, pp
	}
	host = strings.Trim(host, "[]")
	return p == port && slices.Contains(hosts, host)
}
