package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestTowerctlEvents runs `towerctl events` against a real hub: it needs
// a session, prints the events it was asked for as JSON lines (an
// instance.created after an instance is created, nothing of other types),
// stops after --count, and refuses bad flags.
func TestTowerctlEvents(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")

	if code, out := run(t, h, session, nil, "events", "--count", "1"); code != 1 || !strings.Contains(out, "towerctl login") {
		t.Fatalf("events without login = %d, want 1 with a hint to log in:\n%s", code, out)
	}
	if code, out := run(t, h, session, map[string]string{"REDFORGE_PASSWORD": hubtest.AdminPassword}, "login"); code != 0 {
		t.Fatalf("login = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "events", "--count", "-1"); code != 1 || !strings.Contains(out, "--count") {
		t.Fatalf("events --count -1 = %d, want 1 naming --count\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "events", "extra"); code != 1 || !strings.Contains(out, `"extra"`) {
		t.Fatalf("events with an argument = %d, want 1 naming it\n%s", code, out)
	}

	// The stream runs in the background; its lines arrive on a pipe.
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{}) // closed when Run returned, with its code in exit
	var exit int
	getenv := func(k string) string {
		switch k {
		case "REDFORGE_HUB":
			return h.URL
		case "REDFORGE_SESSION_FILE":
			return session
		}
		return ""
	}
	go func() {
		code := Run(ctx, []string{"events", "--types", "instance.created", "--count", "2"}, strings.NewReader(""), pw, pw, getenv)
		pw.Close()
		exit = code
		close(done)
	}()
	lines := bufio.NewScanner(pr)
	// The stream subscribes before it reads its hello; creating instances
	// until one is seen avoids racing the subscription.
	created := make(chan struct{})
	go func() {
		defer close(created)
		for i := 0; ctx.Err() == nil; i++ {
			if code, out := run(t, h, session, nil, "instances", "create", "ev-"+string(rune('a'+i)), "--stopped"); code != 0 {
				t.Errorf("create = %d\n%s", code, out)
				return
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if i >= 20 {
				return
			}
		}
	}()
	var got []map[string]any
	for len(got) < 2 && lines.Scan() {
		var e map[string]any
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON line: %q", lines.Text())
		}
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2 (scanner: %v)", len(got), lines.Err())
	}
	for _, e := range got {
		if e["type"] != "instance.created" {
			t.Fatalf("event of type %v printed, want only instance.created: %v", e["type"], e)
		}
		if d, _ := e["data"].(map[string]any); d == nil || !strings.HasPrefix(d["name"].(string), "ev-") {
			t.Fatalf("event data does not name the instance: %v", e)
		}
	}
	rest := make(chan string, 1) // whatever it prints after the two events
	go func() {
		var b strings.Builder
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
		rest <- b.String()
	}()
	select {
	case <-done:
		if out := <-rest; exit != 0 || out != "" {
			t.Fatalf("events exited %d after --count 2, printing more:\n%s", exit, out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("events did not stop after --count 2")
	}
	cancel()
	<-created
}
