package hub_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

type transition struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	InstanceID string    `json:"instance_id"`
	RowID      string    `json:"row_id"`
	RowName    string    `json:"row_name"`
	Status     string    `json:"status"`
	PrevStatus string    `json:"prev_status"`
	Message    string    `json:"message"`
}

type flowsVersion struct {
	InstanceID   string          `json:"instance_id"`
	Version      int64           `json:"version"`
	Flows        json.RawMessage `json:"flows"`
	SHA256       string          `json:"sha256"`
	Size         int64           `json:"size"`
	Source       string          `json:"source"`
	DeploymentID string          `json:"deployment_id"`
	Username     string          `json:"username"`
	Time         time.Time       `json:"time"`
}

// wantField fails unless the call answers status with an error naming
// field.
func wantField(t *testing.T, h *hubtest.Hub, method, path string, body any, status int, field string) {
	t.Helper()
	code, b := h.Do(t, method, path, h.AdminToken, body)
	var e struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	if code != status || e.Error.Field != field {
		t.Errorf("%s %s = %d %s; want %d naming %q", method, path, code, b, status, field)
	}
}

// TestInstanceHistoryAndFlowsVersions runs a real instance through
// statuses and flows deployments and reads them back: every observed
// status transition with the previous status, the flows versions of PUT
// and of a blue-green deployment started from a recorded version (with
// the deployment's from and to version numbers), and the 400s and 404s
// naming the field.
func TestInstanceHistoryAndFlowsVersions(t *testing.T) {
	h := hubtest.Start(t)
	w := watchStatus(t, h)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "hist"}, 201, &inst)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)

	history := func(query string) []transition {
		t.Helper()
		var res struct {
			InstanceID  string       `json:"instance_id"`
			Transitions []transition `json:"transitions"`
			Count       int          `json:"count"`
		}
		h.JSON(t, "GET", "/api/instances/hist/history"+query, nil, 200, &res)
		if res.InstanceID != inst.ID || res.Count != len(res.Transitions) {
			t.Fatalf("history %s: instance %q count %d of %d", query, res.InstanceID, res.Count, len(res.Transitions))
		}
		return res.Transitions
	}
	statuses := func(trs []transition) string {
		var s []string
		for i := len(trs) - 1; i >= 0; i-- {
			s = append(s, trs[i].PrevStatus+">"+trs[i].Status)
		}
		return strings.Join(s, " ")
	}
	trs := history("")
	if got := statuses(trs); !strings.HasSuffix(got, ">starting starting>running") || !strings.HasPrefix(got, ">") {
		t.Fatalf("history after start: %s", got)
	}
	for _, tr := range trs {
		if tr.InstanceID != inst.ID || tr.RowID != inst.ID || tr.RowName != "hist" || tr.Time.IsZero() {
			t.Fatalf("transition %+v", tr)
		}
	}

	h.JSON(t, "POST", "/api/instances/hist/stop", nil, 202, nil)
	w.wait(t, inst.ID, fleet.StatusStopped, 30*time.Second)
	h.JSON(t, "POST", "/api/instances/hist/start", nil, 202, nil)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	testenv.WaitFor(t, 10*time.Second, "stop and start in the history", func() error {
		if got := statuses(history("")); !strings.HasSuffix(got, "running>stopped stopped>starting starting>running") {
			return fmt.Errorf("history %s", got)
		}
		return nil
	})
	all := history("")
	if got := history("?limit=2&offset=1"); len(got) != 2 || got[0].ID != all[1].ID || got[1].ID != all[2].ID {
		t.Errorf("limit=2&offset=1 gave %+v of %+v", got, all)
	}
	since := all[2].Time.Format(time.RFC3339Nano)
	if got := history("?since=" + since); len(got) != 3 {
		t.Errorf("since %s gave %d transitions, want 3", since, len(got))
	}
	for _, c := range []struct{ query, field string }{
		{"?since=yesterday", "since"}, {"?until=1", "until"}, {"?limit=-1", "limit"}, {"?limit=x", "limit"},
		{"?offset=-3", "offset"}, {"?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"},
	} {
		wantField(t, h, "GET", "/api/instances/hist/history"+c.query, nil, 400, c.field)
	}
	wantField(t, h, "GET", "/api/instances/nope/history", nil, 404, "")

	// Flows versions: two PUTs, then a deployment of version 1.
	versions := func() []flowsVersion {
		t.Helper()
		var res struct {
			Versions []flowsVersion `json:"versions"`
			Count    int            `json:"count"`
		}
		h.JSON(t, "GET", "/api/instances/hist/flows/versions", nil, 200, &res)
		return res.Versions
	}
	if vs := versions(); len(vs) != 0 {
		t.Fatalf("versions before any deploy: %+v", vs)
	}
	v1, v2 := bgFlows(t, "bluegreen-v1.json"), bgFlows(t, "bluegreen-v2.json")
	for i, doc := range []json.RawMessage{v1, v2} {
		var put struct {
			FlowsVersion int64 `json:"flows_version"`
		}
		h.JSON(t, "PUT", "/api/instances/hist/flows", []byte(doc), 200, &put)
		if put.FlowsVersion != int64(i+1) {
			t.Fatalf("PUT %d answered flows_version %d", i+1, put.FlowsVersion)
		}
	}
	vs := versions()
	if len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 || vs[0].Source != "put" || vs[0].Username != "admin" ||
		len(vs[0].Flows) != 0 || len(vs[0].SHA256) != 64 || vs[0].Size != int64(len(v2)) {
		t.Fatalf("versions after two PUTs: %+v", vs)
	}
	var got flowsVersion
	h.JSON(t, "GET", "/api/instances/hist/flows/versions/1", nil, 200, &got)
	var gotDoc, wantDoc any
	_ = json.Unmarshal(got.Flows, &gotDoc)
	_ = json.Unmarshal(v1, &wantDoc)
	if sum := sha256.Sum256(v1); !reflect.DeepEqual(gotDoc, wantDoc) || got.SHA256 != hex.EncodeToString(sum[:]) || got.SHA256 != vs[1].SHA256 {
		t.Fatalf("version 1: sha256 %s, %d bytes of flows; want the v1 document (sha256 %x)", got.SHA256, len(got.Flows), sum)
	}
	wantField(t, h, "GET", "/api/instances/hist/flows/versions/0", nil, 400, "version")
	wantField(t, h, "GET", "/api/instances/hist/flows/versions/one", nil, 400, "version")
	wantField(t, h, "GET", "/api/instances/hist/flows/versions/9", nil, 404, "version")
	wantField(t, h, "GET", "/api/instances/hist/flows/versions?limit=100001", nil, 400, "limit")

	base := map[string]any{"instance": "hist", "drain_timeout": "1s", "rollback_window": "0s"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	wantField(t, h, "POST", "/api/deployments", with(), 400, "flows")
	wantField(t, h, "POST", "/api/deployments", with("flows", v1, "flows_version", 1), 400, "flows_version")
	wantField(t, h, "POST", "/api/deployments", with("flows_version", 0), 400, "flows_version")
	wantField(t, h, "POST", "/api/deployments", with("flows_version", "1"), 400, "flows_version")
	wantField(t, h, "POST", "/api/deployments", with("flows_version", 1.5), 400, "flows_version")
	wantField(t, h, "POST", "/api/deployments", with("flows_version", 7), 404, "flows_version")
	wantField(t, h, "POST", "/api/deployments", with("instance", "nope", "flows_version", 1), 404, "instance")

	d := bgDeploy(t, h, with("flows_version", 1, "smoke", map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v1"`}}))
	if d.Status != "succeeded" {
		t.Fatalf("deployment of version 1: %s %s", d.Status, d.Error)
	}
	vs = versions()
	if len(vs) != 3 || vs[0].Version != 3 || vs[0].Source != "deployment" || vs[0].DeploymentID != d.ID || vs[0].SHA256 != vs[2].SHA256 {
		t.Fatalf("versions after the deployment: %+v", vs)
	}
	var list struct {
		Deployments []struct {
			ID          string `json:"id"`
			FromVersion int64  `json:"from_version"`
			ToVersion   int64  `json:"to_version"`
		} `json:"deployments"`
	}
	h.JSON(t, "GET", "/api/deployments?instance=hist", nil, 200, &list)
	if len(list.Deployments) != 1 || list.Deployments[0].FromVersion != 2 || list.Deployments[0].ToVersion != 3 {
		t.Fatalf("deployments list: %+v, want from 2 to 3", list.Deployments)
	}
	var one struct {
		FromVersion int64  `json:"from_version"`
		ToVersion   int64  `json:"to_version"`
		Instance    string `json:"instance"`
	}
	h.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &one)
	if one.FromVersion != 2 || one.ToVersion != 3 || one.Instance != "hist" {
		t.Fatalf("deployment view: %+v", one)
	}

	// The green row's transitions are the logical instance's history.
	testenv.WaitFor(t, 10*time.Second, "green's transitions under the logical instance", func() error {
		for _, tr := range history("") {
			if tr.RowID != inst.ID && strings.HasPrefix(tr.RowName, "hist.") && tr.Status == fleet.StatusRunning && tr.InstanceID == inst.ID {
				return nil
			}
		}
		return fmt.Errorf("no running transition of a color row in %s", statuses(history("")))
	})

	// A viewer reads history and versions; an operator cannot start a
	// deployment from a version without deployments:create (403 before 404).
	viewer := h.CreateUser(t, "histviewer", "VIEWER")
	for _, p := range []string{"/api/instances/hist/history", "/api/instances/hist/flows/versions", "/api/instances/hist/flows/versions/1"} {
		if code, body := h.Do(t, "GET", p, viewer, nil); code != 200 {
			t.Errorf("viewer GET %s = %d %s", p, code, body)
		}
	}
	if code, _ := h.Do(t, "POST", "/api/deployments", viewer, with("flows_version", 1)); code != 403 {
		t.Errorf("viewer POST /api/deployments = %d, want 403", code)
	}
}
