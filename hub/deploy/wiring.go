package deploy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/redforge/controltower/hub/catalog"
)

// HubBroker is the broker value of an mqtt-broker config node that the
// hub wires to its own bus, with the runtime's credentials.
const HubBroker = "redforge-hub"

// MQTTPassword is the hub-bus password of a runtime (catalog row id): an
// HMAC of the row's admin password, so it is derived, never stored.
func MQTTPassword(adminPassword string) string {
	mac := hmac.New(sha256.New, []byte(adminPassword))
	mac.Write([]byte("mqtt"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// render prepares flows for one runtime: "${REDFORGE_INSTANCE}" and
// "${REDFORGE_LOGICAL}" are replaced by the row's and the logical
// instance's names, and every mqtt-broker node whose broker is
// "redforge-hub" gets the hub bus address and the row's credentials.
func (o *Orchestrator) render(flows json.RawMessage, inst catalog.Instance) ([]json.RawMessage, error) {
	doc := bytes.ReplaceAll(flows, []byte("${REDFORGE_INSTANCE}"), []byte(inst.Name))
	doc = bytes.ReplaceAll(doc, []byte("${REDFORGE_LOGICAL}"), []byte(LogicalName(inst.Name)))
	var nodes []map[string]any
	if err := json.Unmarshal(doc, &nodes); err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	out := make([]json.RawMessage, 0, len(nodes))
	for _, n := range nodes {
		if n["type"] == "mqtt-broker" && n["broker"] == HubBroker {
			if o.cfg.BrokerAddr == nil {
				return nil, fmt.Errorf("flows: node %v uses the hub broker, which this hub does not expose", n["id"])
			}
			host, port, err := net.SplitHostPort(o.cfg.BrokerAddr())
			if err != nil {
				return nil, fmt.Errorf("hub broker address: %w", err)
			}
			if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
				host = "127.0.0.1"
			}
			pw, err := o.d.Fleet.AdminPassword(inst.ID)
			if err != nil {
				return nil, err
			}
			p, _ := strconv.Atoi(port)
			n["broker"], n["port"] = host, p
			n["clientid"] = inst.ID
			n["credentials"] = map[string]any{"user": inst.ID, "password": MQTTPassword(pw)}
		}
		b, err := json.Marshal(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// BrokerAuth admits a runtime to the hub's MQTT broker: the username is
// its catalog row id and the password MQTTPassword of its admin password.
type BrokerAuth struct {
	Catalog interface {
		Instance(id string) (catalog.Instance, error)
	}
	// AdminPassword derives a row's admin password (hub/fleet); nil or an
	// error refuses.
	AdminPassword func(id string) (string, error)
}

// Authenticate implements broker.Authenticator.
func (a BrokerAuth) Authenticate(_, username string, password []byte) bool {
	if a.AdminPassword == nil || username == "" {
		return false
	}
	if _, err := a.Catalog.Instance(username); err != nil {
		return false
	}
	pw, err := a.AdminPassword(username)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(MQTTPassword(pw)), password)
}
