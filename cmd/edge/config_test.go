package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
)

func parse(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	m := NewMain()
	m.Stdout = io.Discard
	m.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err := m.ParseFlags(context.Background(), args)
	return m.Config, err
}

func TestConfigPrecedenceFlagOverEnvOverDefault(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	if c.DataDir != want.DataDir || c.MQTTListen != ":1883" || c.Listen != "127.0.0.1:9464" || c.LogLevel != "info" || c.Hubs != nil || c.Token != "" {
		t.Fatalf("defaults = %+v", c)
	}

	env := map[string]string{
		"REDFORGE_EDGE_DATA_DIR":    "/var/lib/redforge-edge",
		"REDFORGE_EDGE_MQTT_LISTEN": "127.0.0.1:1884",
		"REDFORGE_EDGE_HUB":         "https://hub-a:8443, https://hub-b:8443",
		"REDFORGE_EDGE_TOKEN":       "from-env",
		"REDFORGE_EDGE_LOG_LEVEL":   "debug",
	}
	c, err = parse(t, env, "--data-dir", "/data", "--hub", "https://hub-c")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/data" || c.MQTTListen != "127.0.0.1:1884" || c.LogLevel != "debug" || c.Token.Reveal() != "from-env" || c.Listen != DefaultListen {
		t.Fatalf("merged = %+v", c)
	}
	if !slices.Equal(c.Hubs, []string{"https://hub-c"}) {
		t.Fatalf("hubs = %v, flag should win", c.Hubs)
	}
	c, _ = parse(t, env)
	if !slices.Equal(c.Hubs, []string{"https://hub-a:8443", "https://hub-b:8443"}) {
		t.Fatalf("hubs from env = %v", c.Hubs)
	}
}

func TestValidateReportsEveryProblemWithItsField(t *testing.T) {
	c := Config{
		DataDir:    "",
		MQTTListen: "1883",
		Listen:     "127.0.0.1:99999",
		Hubs:       []string{"https://ok", "hub-without-scheme", "https://user:hunter2@hub"},
		Token:      "has space",
		LogLevel:   "verbose",
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, field := range []string{"data-dir:", "mqtt-listen:", "listen:", "hub: \"hub-without-scheme\"", "token:", "log-level:"} {
		if !strings.Contains(msg, field) {
			t.Errorf("error lacks %q: %s", field, msg)
		}
	}
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "has space") || strings.Contains(msg, "\n") {
		t.Errorf("error leaks a secret or spans lines: %s", msg)
	}
}

func TestEnvErrorNamesVariable(t *testing.T) {
	_, err := parse(t, map[string]string{"REDFORGE_EDGE_LOG_LEVEL": "loud"})
	if err == nil || !strings.Contains(err.Error(), "log-level") {
		t.Fatalf("bad env level: %v", err)
	}
}
