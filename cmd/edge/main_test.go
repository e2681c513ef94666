package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/internal/testenv"
)

// MustRunMain starts redforge-edge in-process on free loopback ports with a
// temp data dir and no environment, closed at cleanup. Its logs go to logs.
func MustRunMain(tb testing.TB, logs io.Writer, args ...string) *Main {
	tb.Helper()
	m := NewMain()
	m.Stdout, m.Stderr = io.Discard, logs
	m.LookupEnv = func(string) (string, bool) { return "", false }
	base := []string{"--data-dir", tb.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"}
	if !slices.Contains(args, "--mqtt-allow-anonymous") && !slices.Contains(args, "--mqtt-users") {
		base = append(base, "--mqtt-users", testUsersFile(tb))
	}
	if err := m.ParseFlags(context.Background(), append(base, args...)); err != nil {
		tb.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

func get(tb testing.TB, m *Main, path string) (int, string) {
	tb.Helper()
	resp, err := http.Get("http://" + m.HTTPAddr().String() + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// The MQTT user of the test edges (testUsersFile).
const (
	testMQTTUser     = "tester"
	testMQTTPassword = "test-password-1"
)

// testUsersFile writes a --mqtt-users file holding testMQTTUser.
func testUsersFile(tb testing.TB) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(testMQTTPassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "mqtt-users")
	if err := os.WriteFile(path, []byte("# test users\n"+testMQTTUser+":"+string(h)+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func publishQoS1(tb testing.TB, m *Main, topic, payload string) {
	tb.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m.MQTTAddr().String()).
		SetClientID("test-pub").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetUsername(testMQTTUser).SetPassword(testMQTTPassword))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publish: no PUBACK (%v)", tok.Error())
	}
}

func TestHealthzMetricsAndAcceptedCounter(t *testing.T) {
	m := MustRunMain(t, io.Discard)

	code, body := get(t, m, "/healthz")
	if code != http.StatusOK {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	var h healthResponse
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Components["broker"] != "ok" || h.Components["outbox"] != "ok" {
		t.Fatalf("/healthz body = %s", body)
	}

	_, metrics := get(t, m, "/metrics")
	for _, want := range []string{
		`redforge_edge_outbox_depth{stream="audit"} 0`,
		`redforge_edge_outbox_bytes{stream="vectors"} 0`,
		`redforge_edge_records_accepted_total{stream="audit"} 0`,
		`redforge_edge_records_refused_total{reason="not_json_object"} 0`,
		`redforge_edge_build_info{version="dev"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	publishQoS1(t, m, "redforge/v1/audit", `{"action":"login"}`)
	_, metrics = get(t, m, "/metrics")
	for _, want := range []string{
		`redforge_edge_records_accepted_total{stream="audit"} 1`,
		`redforge_edge_outbox_depth{stream="audit"} 1`,
		fmt.Sprintf(`redforge_edge_outbox_bytes{stream="audit"} %d`, len(`{"action":"login"}`)),
		`redforge_edge_outbox_last_seq{stream="audit"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics after publish lacks %q", want)
		}
	}
}

func TestHealthz503NamesFailedComponent(t *testing.T) {
	m := MustRunMain(t, io.Discard)
	m.Outbox.Close()
	code, body := get(t, m, "/healthz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz = %d, want 503", code)
	}
	var h healthResponse
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "fail" || h.Components["outbox"] != "fail" || h.Components["broker"] != "ok" {
		t.Fatalf("/healthz body = %s", body)
	}
}

func TestTokenNeverLogged(t *testing.T) {
	const token = "tok-3f9a1c-very-secret"
	var logs testenv.Buffer
	m := MustRunMain(t, &logs, "--token", token, "--log-level", "debug", "--hub", "https://hub-1.example:8443")
	publishQoS1(t, m, "redforge/v1/metrics", `{"cpu":1}`)
	get(t, m, "/healthz")
	m.Logger.Info("config", "config", m.Config)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Config.Token.Reveal() != token {
		t.Fatal("token not parsed")
	}
	if !strings.Contains(logs.String(), "token_set=true") {
		t.Fatalf("start log does not say token_set=true:\n%s", logs.String())
	}
	for _, s := range []string{logs.String(), fmt.Sprintf("%v %+v %#v %s", m.Config, m.Config, m.Config, m.Config.Token)} {
		if strings.Contains(s, token) {
			t.Fatalf("token leaked: %s", s)
		}
	}
}

// TestRunExitCodes: usage errors exit 2, an unusable data dir exits 1, each
// with one line on stderr.
func TestRunExitCodes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad level", []string{"--log-level", "loud"}, 2, "log-level"},
		{"bad hub", []string{"--hub", "ftp://x"}, 2, "hub"},
		{"stray argument", []string{"extra"}, 2, "unexpected argument"},
		{"data dir is a file", []string{"--data-dir", filepath.Join(file, "sub"), "--mqtt-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"}, 1, "data dir"},
		{"help", []string{"-h"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			if tc.code == 0 {
				if !strings.Contains(stdout.String(), "--data-dir") && !strings.Contains(stdout.String(), "-data-dir") {
					t.Fatalf("help output: %q", stdout.String())
				}
				return
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "redforge-edge: ") || !strings.Contains(out, tc.contains) {
				t.Fatalf("stderr = %q, want one line naming %q", out, tc.contains)
			}
		})
	}
}

// TestMQTTAuthAndOpenMode (issue 13.6): by default the edge's broker
// refuses a client without credentials and admits a user of --mqtt-users;
// the open mode must be asked for, and then the edge warns in its log, in
// /healthz and in a metric.
func TestMQTTAuthAndOpenMode(t *testing.T) {
	var logs bytes.Buffer
	m := MustRunMain(t, &logs)
	anon := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m.MQTTAddr().String()).
		SetClientID("anon").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := anon.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		anon.Disconnect(0)
		t.Fatal("a client without credentials was admitted")
	}
	publishQoS1(t, m, "redforge/v1/audit", `{"action":"ok"}`)
	if _, body := get(t, m, "/healthz"); strings.Contains(body, "warnings") {
		t.Errorf("/healthz warns without the open mode: %s", body)
	}
	if fi, err := os.Stat(filepath.Join(m.Config.DataDir, FlowKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("flow key file: %v %v", fi, err)
	}

	var openLogs bytes.Buffer
	open := MustRunMain(t, &openLogs, "--mqtt-allow-anonymous")
	if !strings.Contains(openLogs.String(), "level=WARN") || !strings.Contains(openLogs.String(), "--mqtt-allow-anonymous") {
		t.Errorf("no warning at start in the open mode:\n%s", openLogs.String())
	}
	if code, body := get(t, open, "/healthz"); code != 200 || !strings.Contains(body, "mqtt-allow-anonymous") {
		t.Errorf("/healthz in the open mode: %d %s, want a warning", code, body)
	}
	if _, body := get(t, open, "/metrics"); !strings.Contains(body, "redforge_edge_mqtt_anonymous 1") {
		t.Error("/metrics does not show the open mode")
	}
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + open.MQTTAddr().String()).
		SetClientID("anon").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("the open mode refused a client: %v", tok.Error())
	}
	c.Disconnect(0)

	m2 := NewMain()
	m2.LookupEnv = func(string) (string, bool) { return "", false }
	err := m2.ParseFlags(t.Context(), []string{"--mqtt-allow-anonymous", "--mqtt-users", "/x", "--mqtt-admin", "root"})
	if err == nil || !strings.Contains(err.Error(), "mqtt-allow-anonymous") {
		t.Errorf("open mode with users: %v, want an error naming the flag", err)
	}
}
