package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/redforge/controltower/edge/broker"
)

// FlowKeyFile in the data dir holds the key the local Node-RED's per-flow
// MQTT credentials are derived from (0600, created at first start).
const FlowKeyFile = "mqtt-flow.key"

// warnAnonymous is the warning of the open mode, in the log and /healthz.
const warnAnonymous = "the MQTT broker admits local clients without credentials (--mqtt-allow-anonymous): any local process can publish records and read every topic"

// mqttAuth builds the broker's auth hook from the config: the open mode
// (warned), or the users of --mqtt-users plus per-flow credentials from
// the data dir's key.
func (m *Main) mqttAuth() (*broker.Auth, error) {
	if m.Config.MQTTAllowAnonymous {
		m.mqttOpen = true
		m.Logger.Warn(warnAnonymous)
		return broker.NewLocalAuth(broker.DefaultLocalNets()), nil
	}
	key, err := loadFlowKey(filepath.Join(m.Config.DataDir, FlowKeyFile))
	if err != nil {
		return nil, err
	}
	m.flowKey = key
	var users map[string][]byte
	if m.Config.MQTTUsers != "" {
		f, err := os.Open(m.Config.MQTTUsers)
		if err != nil {
			return nil, fmt.Errorf("mqtt-users: %w", err)
		}
		defer f.Close()
		if users, err = broker.ReadUsers(f); err != nil {
			return nil, fmt.Errorf("mqtt-users %s: %w", m.Config.MQTTUsers, err)
		}
	} else {
		m.Logger.Warn("no --mqtt-users: only the local Node-RED's flows (per-flow credentials) can connect to the MQTT broker")
	}
	if a := m.Config.MQTTAdmin; a != "" && users[a] == nil {
		return nil, fmt.Errorf("mqtt-admin: %q is not a user of %s", a, m.Config.MQTTUsers)
	}
	return broker.NewAuth(users, m.Config.MQTTAdmin, key), nil
}

// loadFlowKey reads the key at path, or creates it (32 random bytes, hex,
// mode 0600).
func loadFlowKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(key) < 16 {
			return nil, fmt.Errorf("%s is damaged; remove it (the local Node-RED gets new MQTT credentials at the next config)", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}

// flowCredentials returns the agent's hook handing per-flow MQTT
// credentials to the local Node-RED, nil in the open mode.
func (m *Main) flowCredentials() func(nodeID string) (string, string) {
	if m.flowKey == nil {
		return nil
	}
	key := m.flowKey
	return func(nodeID string) (string, string) { return broker.FlowCredential(key, nodeID) }
}

// mqttEndpoint returns the hosts and port under which the local Node-RED
// reaches this edge's broker: loopback names and the listen host.
func (m *Main) mqttEndpoint() (hosts []string, port string) {
	hosts = []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(m.Config.MQTTListen); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
		hosts = append(hosts, h)
	}
	if a := m.MQTTAddr(); a != nil {
		_, port, _ = net.SplitHostPort(a.String())
	}
	return hosts, port
}
