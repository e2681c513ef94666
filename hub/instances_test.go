package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

type instance struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	DesiredState string `json:"desired_state"`
	FlowsVersion string `json:"flows_version"`
	Observed     struct {
		Status  string `json:"status"`
		Port    int    `json:"port"`
		Message string `json:"message"`
	} `json:"observed"`
	Allocations []struct {
		ID      string `json:"id"`
		Replica int    `json:"replica"`
		Hub     string `json:"hub"`
		Status  string `json:"status"`
		Address string `json:"address"`
	} `json:"allocations"`
}

// placed waits until the scheduler placed every replica of the named
// instance and returns it as the API shows it.
func placed(t *testing.T, h *hubtest.Hub, name string) instance {
	t.Helper()
	var inst instance
	testenv.WaitFor(t, 30*time.Second, name+" placed", func() error {
		h.JSON(t, "GET", "/api/instances/"+name, nil, 200, &inst)
		if len(inst.Allocations) == 0 {
			return fmt.Errorf("no allocation yet")
		}
		return nil
	})
	return inst
}

// runtimeID is the driver's id of the instance's first replica (its
// allocation id), as read from the API.
func (i instance) runtimeID(t *testing.T) string {
	t.Helper()
	if len(i.Allocations) == 0 {
		t.Fatalf("instance %s has no allocation: %+v", i.Name, i)
	}
	return i.Allocations[0].ID
}

// statusWatch follows instance.status events over the WebSocket.
type statusWatch struct {
	conn    *websocket.Conn
	seen    []string
	pending map[string][]string // statuses of other instances, read while waiting for one
}

func watchStatus(t *testing.T, h *hubtest.Hub) *statusWatch { return watchStatusB(t, h) }

func watchStatusB(t testing.TB, h *hubtest.Hub) *statusWatch {
	t.Helper()
	return &statusWatch{conn: dialEvents(t, h, "instance.status"), pending: map[string][]string{}}
}

// dialEvents subscribes to the hub's WebSocket for the given event types.
func dialEvents(t testing.TB, h *hubtest.Hub, types string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(h.URL, "http") + "/api/ws?types=" + types
	hdr := http.Header{"Authorization": {"Bearer " + h.AdminToken}}
	conn, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		t.Fatalf("websocket: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// expectEvent reads events until one of type typ names instance id.
func expectEvent(t *testing.T, conn *websocket.Conn, typ, id string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var e struct {
			Type string `json:"type"`
			Data struct {
				ID         string `json:"id"`
				InstanceID string `json:"instance_id"`
			} `json:"data"`
		}
		if err := conn.ReadJSON(&e); err != nil {
			t.Fatalf("waiting for %s of %s: %v", typ, id, err)
		}
		if e.Type == typ && (e.Data.ID == id || e.Data.InstanceID == id) {
			return
		}
	}
}

// wait reads events until instance id reaches status, failing on a
// deadline; it returns how long it waited.
func (w *statusWatch) wait(t *testing.T, id, status string, within time.Duration) time.Duration {
	t.Helper()
	return w.waitB(t, id, status, within)
}

func (w *statusWatch) waitB(t testing.TB, id, status string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for len(w.pending[id]) > 0 {
		st := w.pending[id][0]
		w.pending[id] = w.pending[id][1:]
		w.seen = append(w.seen, st)
		if st == status {
			return 0
		}
	}
	deadline := start.Add(within)
	for {
		_ = w.conn.SetReadDeadline(deadline)
		var e struct {
			Type string `json:"type"`
			Data struct {
				InstanceID string `json:"instance_id"`
				Status     string `json:"status"`
				Message    string `json:"message"`
			} `json:"data"`
		}
		if err := w.conn.ReadJSON(&e); err != nil {
			t.Fatalf("waiting for %s to be %s (seen %v): %v", id, status, w.seen, err)
		}
		if e.Type != "instance.status" {
			continue
		}
		if e.Data.InstanceID != id {
			w.pending[e.Data.InstanceID] = append(w.pending[e.Data.InstanceID], e.Data.Status)
			continue
		}
		w.seen = append(w.seen, e.Data.Status)
		if e.Data.Status == status {
			return time.Since(start)
		}
		if e.Data.Status == fleet.StatusError {
			t.Fatalf("instance %s went to error: %s", id, e.Data.Message)
		}
	}
}

func get(url string) (int, string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

const helloFlow = `[
 {"id":"tab1","type":"tab","label":"hello"},
 {"id":"in1","type":"http in","z":"tab1","url":"/hello","method":"get","wires":[["fn1"]]},
 {"id":"fn1","type":"change","z":"tab1","rules":[{"t":"set","p":"payload","pt":"msg","to":"v1","tot":"str"}],"wires":[["out1"]]},
 {"id":"out1","type":"http response","z":"tab1","statusCode":"200","wires":[]}
]`

// TestInstanceLifecycle drives one instance through the API with the
// process driver and real Node-RED: create → running (seen on the
// WebSocket) → flows deployed and answering → stop → start → killed
// behind the hub's back and restarted by the monitor → delete.
func TestInstanceLifecycle(t *testing.T) {
	h := hubtest.Start(t)
	w := watchStatus(t, h)
	life := dialEvents(t, h, "instance.created,instance.deleted")

	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "alpha", "resources": map[string]any{"memory_mb": 256}}, 201, &inst)
	expectEvent(t, life, "instance.created", inst.ID)
	took := w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	t.Logf("create → running on the WebSocket in %v", took)
	h.JSON(t, "GET", "/api/instances/alpha", nil, 200, &inst)
	port := inst.Observed.Port
	if inst.Observed.Status != fleet.StatusRunning || port == 0 {
		t.Fatalf("instance after running event: %+v", inst)
	}

	var dep struct {
		Rev string `json:"rev"`
	}
	h.JSON(t, "PUT", "/api/instances/alpha/flows", []byte(helloFlow), 200, &dep)
	hello := fmt.Sprintf("http://127.0.0.1:%d/hello", port)
	testenv.WaitFor(t, 20*time.Second, "deployed flow answers", func() error {
		if code, body, err := get(hello); err != nil || code != 200 || body != "v1" {
			return fmt.Errorf("GET /hello = %d %q %v", code, body, err)
		}
		return nil
	})
	h.JSON(t, "GET", "/api/instances/alpha", nil, 200, &inst)
	if len(dep.Rev) != 64 || inst.FlowsVersion != dep.Rev[:12] {
		t.Errorf("flows_version = %q, want the first 12 digits of the deployed rev %q", inst.FlowsVersion, dep.Rev)
	}

	h.JSON(t, "POST", "/api/instances/alpha/stop", nil, 202, nil)
	w.wait(t, inst.ID, fleet.StatusStopped, 30*time.Second)
	if _, _, err := get(hello); err == nil {
		t.Fatal("stopped instance still answers")
	}
	h.JSON(t, "POST", "/api/instances/alpha/start", nil, 202, nil)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	if code, body, err := get(hello); err != nil || body != "v1" {
		t.Fatalf("after restart GET /hello = %d %q %v; flows were not kept", code, body, err)
	}

	// Kill the process behind the hub's back: the monitor notices and
	// brings it back by itself.
	rid := inst.runtimeID(t)
	rt, err := h.Driver.Inspect(t.Context(), rid)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(rt.RuntimeID)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", rt.RuntimeID, err)
	}
	w.wait(t, inst.ID, fleet.StatusFailed, 30*time.Second)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)

	code, logs := h.Do(t, "GET", "/api/instances/alpha/logs?tail=50", h.AdminToken, nil)
	if code != 200 || !strings.Contains(string(logs), "Node-RED") {
		t.Errorf("logs = %d %.200q", code, logs)
	}

	h.JSON(t, "DELETE", "/api/instances/alpha", nil, 200, nil)
	testenv.WaitFor(t, 30*time.Second, "runtime removed", func() error {
		if _, err := h.Driver.Inspect(t.Context(), rid); !errors.Is(err, fleet.ErrNotFound) {
			return fmt.Errorf("inspect after delete: %v", err)
		}
		return nil
	})
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d still bound after delete: %v", port, err)
	}
	ln.Close()
	expectEvent(t, life, "instance.deleted", inst.ID)
	if code, _ := h.Do(t, "GET", "/api/instances/alpha", h.AdminToken, nil); code != 404 {
		t.Fatalf("deleted instance GET = %d, want 404", code)
	}
}

// TestCrashLoopStopsRestarts kills an instance every time it comes back;
// after the fifth crash it is marked crash_looping and left alone until an
// operator starts it.
func TestCrashLoopStopsRestarts(t *testing.T) {
	h := hubtest.Start(t)
	w := watchStatus(t, h)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "crashy"}, 201, &inst)
	rid := placed(t, h, "crashy").runtimeID(t)
	lastPID := ""
	for i := 0; i < fleet.DefaultCrashLoopCount; i++ {
		var rt fleet.Runtime
		testenv.WaitFor(t, 60*time.Second, "a new process to kill", func() error {
			var err error
			rt, err = h.Driver.Inspect(t.Context(), rid)
			if err != nil || rt.State != fleet.StateRunning || rt.RuntimeID == lastPID {
				return fmt.Errorf("runtime %+v %v", rt, err)
			}
			return nil
		})
		lastPID = rt.RuntimeID
		pid, _ := strconv.Atoi(rt.RuntimeID)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	w.wait(t, inst.ID, fleet.StatusCrashLooping, 60*time.Second)
	h.JSON(t, "GET", "/api/instances/crashy", nil, 200, &inst)
	if inst.Observed.Status != fleet.StatusCrashLooping {
		t.Fatalf("status = %q", inst.Observed.Status)
	}
	if rt, err := h.Driver.Inspect(t.Context(), rid); err != nil || rt.State == fleet.StateRunning {
		t.Fatalf("crash-looping instance is running again: %+v %v", rt, err)
	}
	// An operator's start clears it.
	h.JSON(t, "POST", "/api/instances/crashy/start", nil, 202, nil)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
}

// TestInstanceBadInput checks every invalid payload gets 400 naming the
// field and creates nothing.
func TestInstanceBadInput(t *testing.T) {
	h := hubtest.Start(t)
	cases := []struct {
		body  string
		field string
	}{
		{`{}`, "name"},
		{`{"name":"Bad Name"}`, "name"},
		{`{"name":"ok","resources":{"memory_mb":64}}`, "resources.memory_mb"},
		{`{"name":"ok","resources":{"memory_mb":"lots"}}`, "resources.memory_mb"},
		{`{"name":"ok","resources":{"cpu":4096}}`, "resources.cpu"},
		{`{"name":"ok","resources":{"cpu":-1}}`, "resources.cpu"},
		{`{"name":"ok","env":{"1BAD":"x"}}`, "env.1BAD"},
		{`{"name":"ok","env":{"PORT":"1"}}`, "env.PORT"},
		{`{"name":"ok","desired_state":"paused"}`, "desired_state"},
		{`{"name":"ok","placement":"anywhere"}`, "placement"},
		{`{"name":"ok","colour":"red"}`, "colour"},
		{`{"name":"ok"} {"name":"again"}`, ""},
		{`not json`, ""},
	}
	for _, c := range cases {
		code, body := h.Do(t, "POST", "/api/instances", h.AdminToken, []byte(c.body))
		var e struct {
			Error struct {
				Code  string `json:"code"`
				Field string `json:"field"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if code != 400 || e.Error.Field != c.field {
			t.Errorf("POST %s = %d %s; want 400 naming %q", c.body, code, body, c.field)
		}
	}
	var list struct {
		Count int `json:"count"`
	}
	h.JSON(t, "GET", "/api/instances", nil, 200, &list)
	if list.Count != 0 {
		t.Fatalf("bad input created %d instances", list.Count)
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "dup", "desired_state": "stopped"}, 201, nil)
	if code, body := h.Do(t, "POST", "/api/instances", h.AdminToken, map[string]any{"name": "dup"}); code != 409 || !strings.Contains(string(body), `"field":"name"`) {
		t.Fatalf("duplicate name = %d %s, want 409 naming name", code, body)
	}
	for _, p := range []string{"/api/instances/nope", "/api/instances/nope/flows", "/api/instances/nope/logs"} {
		if code, _ := h.Do(t, "GET", p, h.AdminToken, nil); code != 404 {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
	code, body := h.Do(t, "PATCH", "/api/instances/dup", h.AdminToken, map[string]any{"resources": map[string]any{"memory_mb": 1}})
	if code != 400 || !strings.Contains(string(body), "resources.memory_mb") {
		t.Errorf("PATCH bad memory = %d %s", code, body)
	}
	code, body = h.Do(t, "PUT", "/api/instances/dup/flows", h.AdminToken, []byte(`[{"id":"a","type":"x","wires":[["zz"]]}]`))
	if code != 400 || !strings.Contains(string(body), `node \"a\"`) {
		t.Errorf("PUT invalid flows = %d %s, want 400 naming node a", code, body)
	}
}
