package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/edge/agent"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/router"
	"github.com/redforge/controltower/syncproto"
)

type fakeHub struct {
	mu       sync.Mutex
	enrolls  int
	applied  []uint64
	version  uint64
	lastAuth string
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.URL.Path == agent.EnrollPath:
		var req map[string]string
		json.NewDecoder(r.Body).Decode(&req)
		if req["token"] != "rfet_good" || h.enrolls > 0 {
			http.Error(w, `{"error":{"code":"unauthenticated"}}`, http.StatusUnauthorized)
			return
		}
		h.enrolls++
		w.WriteHeader(201)
		w.Write([]byte(`{"edge_id":"edge-1","credential":"rfe_edge-1.secret"}`))
	case r.URL.Path == agent.ConfigPath+"edge-1":
		h.lastAuth = r.Header.Get("Authorization")
		out, _ := proto.Marshal(&syncproto.ConfigBundle{Version: h.version, Flows: []byte(`[{"id":"f1","type":"tab"}]`), Settings: []byte(`{}`)})
		w.Header().Set("Content-Type", syncproto.ContentTypeProtobuf)
		w.Write(out)
	case r.URL.Path == agent.HeartbeatPath:
		body, _ := io.ReadAll(r.Body)
		hb := &syncproto.Heartbeat{}
		proto.Unmarshal(body, hb)
		h.applied = append(h.applied, hb.AppliedConfigVersion)
		w.WriteHeader(204)
	default:
		w.WriteHeader(404)
	}
}

// TestEnrollOnceThenHeartbeatAndApplyConfig: the token is exchanged once
// for a credential saved 0600 (a restart reads it back without the hub);
// a refused token is an error; the agent pulls the desired config, saves
// it, and reports the applied version in its heartbeat.
func TestEnrollOnceThenHeartbeatAndApplyConfig(t *testing.T) {
	h := &fakeHub{version: 3}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := agent.LoadOrEnroll(ctx, srv.Client(), dir, []string{srv.URL}, "", "", "t"); !errors.Is(err, agent.ErrNotEnrolled) {
		t.Fatalf("no token: %v", err)
	}
	if _, err := agent.LoadOrEnroll(ctx, srv.Client(), dir, []string{srv.URL}, "rfet_bad", "", "t"); err == nil {
		t.Fatal("bad token accepted")
	}
	cred, err := agent.LoadOrEnroll(ctx, srv.Client(), dir, []string{"http://127.0.0.1:1", srv.URL}, "rfet_good", "pi", "t")
	if err != nil || cred.EdgeID != "edge-1" {
		t.Fatalf("enroll: %v %v", cred, err)
	}
	fi, err := os.Stat(filepath.Join(dir, agent.CredentialFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credential file: %v %v", fi, err)
	}
	if strings.Contains(cred.String(), "secret") {
		t.Fatal("credential printed")
	}
	again, err := agent.LoadOrEnroll(ctx, srv.Client(), dir, nil, "rfet_good", "", "t")
	if err != nil || again != cred || h.enrolls != 1 {
		t.Fatalf("restart: %v %v (enrolls %d)", again, err, h.enrolls)
	}
	rt, _ := router.New(router.Config{Targets: []string{srv.URL}})
	a := agent.New(agent.Config{Credential: cred, DataDir: dir, Router: rt, Client: srv.Client()})
	if err := a.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Applied() != 3 || h.lastAuth != "Bearer rfe_edge-1.secret" || len(h.applied) != 1 || h.applied[0] != 3 {
		t.Fatalf("applied %d, heartbeats %v, auth %q", a.Applied(), h.applied, h.lastAuth)
	}
	b, _ := os.ReadFile(filepath.Join(dir, agent.BundleFile))
	if !strings.Contains(string(b), `"f1"`) {
		t.Fatalf("bundle not saved: %s", b)
	}
	// A restarted agent remembers what it applied.
	if a2 := agent.New(agent.Config{Credential: cred, DataDir: dir, Router: rt}); a2.Applied() != 3 {
		t.Fatalf("applied after restart: %d", a2.Applied())
	}
}

// TestAppliesFlowsToRealNodeRED: the agent deploys the desired flows to a
// real local Node-RED (Admin API POST /flows) and reports the version.
func TestAppliesFlowsToRealNodeRED(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Node-RED")
	}
	nr := testenv.NodeRED(t)
	h := &fakeHub{version: 5}
	srv := httptest.NewServer(h)
	defer srv.Close()
	rt, _ := router.New(router.Config{Targets: []string{srv.URL}})
	a := agent.New(agent.Config{Credential: agent.Credential{EdgeID: "edge-1", Secret: "rfe_edge-1.secret"}, DataDir: t.TempDir(),
		Router: rt, NodeREDURL: nr.URL})
	if err := a.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(nr.URL + "/flows")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"id":"f1"`) || a.Applied() != 5 || h.applied[0] != 5 {
		t.Fatalf("Node-RED flows %s, applied %d, reported %v", body, a.Applied(), h.applied)
	}
}
