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
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

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

func publishQoS1(tb testing.TB, m *Main, topic, payload string) {
	tb.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + m.MQTTAddr().String()).
		SetClientID("test-pub").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
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
