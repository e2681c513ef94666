package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/instances"
)

// HubBroker is the broker value of an mqtt-broker config node that the
// hub wires to its own bus, with the runtime's credentials.
const HubBroker = "redforge-hub"

// ClientIDRef is the client id the hub gives a hub-bus broker node: the
// runtime's REDFORGE_CLIENT_ID, which Node-RED substitutes from its
// environment, so each replica of a row has its own session.
const ClientIDRef = "${" + fleet.EnvClientID + "}"

// Render prepares a row's flows for its runtimes: "${REDFORGE_INSTANCE}"
// and "${REDFORGE_LOGICAL}" are replaced by the row's and the logical
// instance's names; every mqtt-broker node whose broker is "redforge-hub"
// gets the hub bus address (brokerAddr, host:port as runtimes reach it),
// the row's credentials, the replica's own client id and a persistent
// session; and every mqtt in
// node on such a broker that subscribes to the row's input
// ("{row}/in/…") subscribes through the shared subscription
// "$share/{row}/{row}/in/…", so each input message goes to one replica.
func Render(flows []byte, row catalog.Instance, creds fleet.Creds, brokerAddr string) ([]json.RawMessage, error) {
	doc := bytes.ReplaceAll(flows, []byte("${REDFORGE_INSTANCE}"), []byte(row.Name))
	doc = bytes.ReplaceAll(doc, []byte("${REDFORGE_LOGICAL}"), []byte(instances.LogicalName(row.Name)))
	var nodes []map[string]any
	if err := json.Unmarshal(doc, &nodes); err != nil {
		return nil, fmt.Errorf("flows: %w", err)
	}
	hubBrokers := map[string]bool{}
	for _, n := range nodes {
		if n["type"] == "mqtt-broker" && n["broker"] == HubBroker {
			if brokerAddr == "" {
				return nil, fmt.Errorf("flows: node %v uses the hub broker, which this hub does not expose", n["id"])
			}
			host, port, err := net.SplitHostPort(brokerAddr)
			if err != nil {
				return nil, fmt.Errorf("hub broker address: %w", err)
			}
			p, _ := strconv.Atoi(port)
			n["broker"], n["port"] = host, p
			n["clientid"] = ClientIDRef
			// A persistent session under the replica's stable client id:
			// QoS 1 messages the broker sent a replica that died unacked,
			// or queued for it, are delivered to the replica that takes
			// its place (same client id, another hub) instead of dropped.
			n["cleansession"] = false
			if v, _ := n["protocolVersion"].(string); v == "5" {
				if _, set := n["sessionExpiry"]; !set {
					n["sessionExpiry"] = SessionExpiry
				}
			}
			n["credentials"] = map[string]any{"user": row.ID, "password": creds.MQTTPassword}
			if id, ok := n["id"].(string); ok {
				hubBrokers[id] = true
			}
		}
	}
	in := InTopic(row.Name)
	out := make([]json.RawMessage, 0, len(nodes))
	for _, n := range nodes {
		if n["type"] == "mqtt in" {
			if b, _ := n["broker"].(string); hubBrokers[b] {
				if t, _ := n["topic"].(string); t == in || strings.HasPrefix(t, in+"/") {
					n["topic"] = SharedTopic(row.Name, t)
				}
			}
		}
		b, err := json.Marshal(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// SessionExpiry (seconds) bounds how long an MQTT 5 broker keeps the
// session of a replica that is gone; MQTT 3.1.1 sessions last until the
// broker's own limit (Mosquitto: persistent_client_expiration).
const SessionExpiry = 3600

// SharedTopic is the shared subscription through which the replicas of a
// row consume topic: one of them gets each message.
func SharedTopic(row, topic string) string { return "$share/" + row + "/" + topic }

// BrokerAuth admits a runtime to the hub's MQTT broker: the username is
// its catalog row id and the password the row's own bus password.
type BrokerAuth struct {
	// Check reports whether password is row's bus password; nil refuses.
	Check func(row string, password []byte) bool
	// Topics gives the ACL the rows and their flows (see acl.go); nil
	// refuses every topic.
	Topics ACLSource
	acl    *aclCache
}

// NewBrokerAuth returns the hub broker's authenticator and ACL.
func NewBrokerAuth(check func(row string, password []byte) bool, topics ACLSource) BrokerAuth {
	return BrokerAuth{Check: check, Topics: topics, acl: &aclCache{}}
}

// Authenticate implements broker.Authenticator.
func (a BrokerAuth) Authenticate(_, username string, password []byte) bool {
	if a.Check == nil || username == "" {
		return false
	}
	return a.Check(username, password)
}
