package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestTowerctlEdges: an operator makes an enrollment token, an edge
// enrolls with it, and towerctl lists it, sets its desired flows (bad flows
// refused naming the node) and reads them back.
func TestTowerctlEdges(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")
	if code, out := run(t, h, session, map[string]string{"REDFORGE_PASSWORD": hubtest.AdminPassword}, "login"); code != 0 {
		t.Fatalf("login = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "edges", "token", "--ttl", "10ms"); code != 1 || !strings.Contains(out, "--ttl") {
		t.Fatalf("token with a too short ttl = %d\n%s", code, out)
	}
	code, out := run(t, h, session, nil, "edges", "token", "--ttl", "1h")
	tok := regexp.MustCompile(`rfet_[A-Za-z0-9_-]+`).FindString(out)
	if code != 0 || tok == "" || !strings.Contains(out, "redforge-edge --hub "+h.URL+" --token "+tok) {
		t.Fatalf("token = %d\n%s", code, out)
	}
	body, _ := json.Marshal(map[string]string{"token": tok, "name": "pi-7"})
	resp, err := http.Post(h.URL+"/api/edges/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var en struct {
		EdgeID string `json:"edge_id"`
	}
	json.NewDecoder(resp.Body).Decode(&en)
	resp.Body.Close()
	if resp.StatusCode != 201 || en.EdgeID == "" {
		t.Fatalf("enroll with the token: %d", resp.StatusCode)
	}
	if code, out := run(t, h, session, nil, "edges", "list"); code != 0 || !strings.Contains(out, en.EdgeID) || !strings.Contains(out, "pi-7") || !strings.Contains(out, "0/0") {
		t.Fatalf("edges list = %d\n%s", code, out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"id":"n1","type":"inject","wires":[["nowhere"]]}]`), 0o600)
	if code, out := run(t, h, session, nil, "edges", "config", "set", en.EdgeID, bad); code != 1 || !strings.Contains(out, "nowhere") {
		t.Fatalf("config set with a wire to an unknown node = %d\n%s", code, out)
	}
	good := filepath.Join(dir, "flows.json")
	os.WriteFile(good, []byte(`[{"id":"t1","type":"tab"},{"id":"n1","type":"inject","z":"t1","wires":[]}]`), 0o600)
	settings := filepath.Join(dir, "settings.json")
	os.WriteFile(settings, []byte(`{"site":"plant-7"}`), 0o600)
	if code, out := run(t, h, session, nil, "edges", "config", "set", en.EdgeID, good, "--settings", settings); code != 0 || !strings.Contains(out, "version 1") {
		t.Fatalf("config set = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "edges", "config", "get", en.EdgeID); code != 0 || !strings.Contains(out, `"plant-7"`) || !strings.Contains(out, `"version": 1`) {
		t.Fatalf("config get = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "edges", "show", "edge-nope"); code != 1 || !strings.Contains(out, "not") {
		t.Fatalf("show unknown = %d\n%s", code, out)
	}
}
