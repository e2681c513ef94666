package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// editorClient is a browser-like client of one user's editor session.
type editorClient struct {
	h      *hubtest.Hub
	name   string
	cookie []*http.Cookie
	perm   string
}

// openEditor does what the console's "Open editor" does: POST
// /api/instances/{name}/editor with the user's token; the answer sets the
// editor session cookie.
func openEditor(t *testing.T, h *hubtest.Hub, token, name string) *editorClient {
	t.Helper()
	req, _ := http.NewRequest("POST", h.URL+"/api/instances/"+name+"/editor", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("open the editor of %s: %d %s", name, resp.StatusCode, b)
	}
	var out struct {
		URL        string `json:"url"`
		Permission string `json:"permission"`
	}
	_ = json.Unmarshal(b, &out)
	if out.URL != "/editor/"+name+"/" {
		t.Fatalf("editor url %q", out.URL)
	}
	var cookies []*http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "redforge_editor" {
			if !c.HttpOnly || c.Path != out.URL || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("editor session cookie %+v: want HttpOnly, SameSite=Strict, path %s", c, out.URL)
			}
			cookies = append(cookies, c)
		}
	}
	if len(cookies) == 0 {
		t.Fatal("no editor session cookie")
	}
	return &editorClient{h: h, name: name, cookie: cookies, perm: out.Permission}
}

// do sends an editor request (path below /editor/{name}) with the
// session's cookies, as the editor does (Node-RED-API-Version v2).
func (e *editorClient) do(t *testing.T, method, path string, body []byte, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.h.URL+"/editor/"+e.name+path, r)
	for _, c := range e.cookie {
		req.AddCookie(c)
	}
	req.Header.Set("Node-RED-API-Version", "v2")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "redforge_editor_replica" {
			e.cookie = append(e.cookie, c)
		}
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// editorFlows reads the flows through the editor and returns them with
// their rev.
func (e *editorClient) flows(t *testing.T) ([]map[string]any, string) {
	t.Helper()
	code, body, _ := e.do(t, "GET", "/flows", nil, nil)
	if code != 200 {
		t.Fatalf("GET flows through the editor = %d %s", code, body)
	}
	var f struct {
		Rev   string           `json:"rev"`
		Flows []map[string]any `json:"flows"`
	}
	if err := json.Unmarshal([]byte(body), &f); err != nil {
		t.Fatal(err)
	}
	return f.Flows, f.Rev
}

// deploy changes the change node's reply to version and deploys, as the
// editor's Deploy button does.
func (e *editorClient) deploy(t *testing.T, version string) (int, string) {
	t.Helper()
	nodes, rev := e.flows(t)
	for _, n := range nodes {
		if n["id"] == "pf-set" {
			n["rules"] = []any{map[string]any{"t": "set", "p": "payload", "pt": "msg", "to": `{"version":"` + version + `"}`, "tot": "json"}}
		}
	}
	body, _ := json.Marshal(map[string]any{"flows": nodes, "rev": rev})
	code, out, _ := e.do(t, "POST", "/flows", body, map[string]string{"Node-RED-Deployment-Type": "full"})
	return code, out
}

// TestEditorThroughHub: /editor/{name}/ serves the instance's Node-RED
// editor behind hub authentication. An OPERATOR's deploy in the editor
// becomes the instance's next flows version by that user, audited, and
// reaches every replica; Node-RED itself names the hub user; a VIEWER
// reads but cannot deploy; without a hub session there is no editor, and
// Node-RED's own login (auth/token) is served nowhere; the editor's
// WebSocket works through the hub; a deploy is refused while the runtime
// is being replaced; password guesses meet the hub's login limits only.
func TestEditorThroughHub(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "ed", "replicas": 2}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/ed/flows", plainFlow("v1"), 200, nil)
	op := h.CreateUser(t, "oper", "OPERATOR")
	viewer := h.CreateUser(t, "viewer", "VIEWER")

	// No hub session: no editor, no Node-RED login.
	for _, p := range []string{"/", "/settings", "/flows", "/auth/login", "/auth/token", "/comms"} {
		for _, method := range []string{"GET", "POST"} {
			if code, body := h.Do(t, method, "/editor/ed"+p, "", nil); code != http.StatusUnauthorized {
				t.Errorf("%s /editor/ed%s without a session = %d %.200s, want 401", method, p, code, body)
			}
		}
	}
	req, _ := http.NewRequest("GET", h.URL+"/editor/ed/", nil)
	req.Header.Set("Accept", "text/html")
	req.AddCookie(&http.Cookie{Name: "redforge_editor", Value: "forged"})
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("editor page with a forged session: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	// An instance token (what flows hold) does not open the editor.
	var tok struct {
		Token string `json:"token"`
	}
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "GET", "/api/instances/ed", nil, 200, &inst)
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "ed-inst", "role": "OPERATOR", "scope": "instance", "instance_id": inst.ID}, 201, &tok)
	if code, body := h.Do(t, "GET", "/editor/ed/settings", tok.Token, nil); code != http.StatusForbidden {
		t.Errorf("editor with an instance token = %d %s, want 403", code, body)
	}

	e := openEditor(t, h, op, "ed")
	if e.perm != "*" {
		t.Errorf("OPERATOR's editor permission %q, want *", e.perm)
	}
	testenv.WaitFor(t, time.Minute, "the editor page through the hub", func() error {
		code, body, hdr := e.do(t, "GET", "/", nil, nil)
		if code != 200 || !strings.Contains(body, "red/red.min.js") {
			return fmt.Errorf("%d %.200s", code, body)
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "'unsafe-eval'") {
			return fmt.Errorf("editor CSP %q", csp)
		}
		return nil
	})
	code, body, _ := e.do(t, "GET", "/settings", nil, nil)
	if code != 200 || !strings.Contains(body, `"username":"oper"`) || !strings.Contains(body, `"permissions":"*"`) {
		t.Errorf("Node-RED's settings for the OPERATOR = %d %.300s, want user op with *", code, body)
	}
	for _, p := range []string{"/auth/token", "/auth/revoke"} {
		if code, body, _ := e.do(t, "POST", p, []byte(`{"client_id":"node-red-editor","grant_type":"password","scope":"*","username":"redforge-hub","password":"guess"}`), nil); code != http.StatusNotFound {
			t.Errorf("POST /editor/ed%s with a session = %d %.200s, want 404", p, code, body)
		}
	}

	// The editor's WebSocket through the hub: subscribing gets Node-RED's
	// retained notifications.
	hdr := http.Header{}
	for _, c := range e.cookie {
		hdr.Add("Cookie", c.Name+"="+c.Value)
	}
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.URL, "http")+"/editor/ed/comms", hdr)
	if err != nil {
		t.Fatalf("editor comms through the hub: %v %v", err, resp)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]string{"subscribe": "notification/#"}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), "notification/") {
		t.Errorf("comms: %s %v, want a notification", msg, err)
	}
	if _, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.URL, "http")+"/editor/ed/comms", nil); err == nil {
		t.Error("editor comms without a session connected")
	}

	// The OPERATOR deploys in the editor: a new flows version by oper,
	// audited, written as the row's flows and run by both replicas.
	if code, body := e.deploy(t, "v2-editor"); code != 200 {
		t.Fatalf("editor deploy = %d %s", code, body)
	}
	var versions struct {
		Versions []struct {
			Version  int64  `json:"version"`
			Username string `json:"username"`
		} `json:"versions"`
	}
	testenv.WaitFor(t, 30*time.Second, "the editor deploy recorded as a flows version by oper", func() error {
		h.JSON(t, "GET", "/api/instances/ed/flows/versions", nil, 200, &versions)
		if len(versions.Versions) == 0 || versions.Versions[0].Username != "oper" {
			return fmt.Errorf("versions %+v", versions.Versions)
		}
		return nil
	})
	testenv.WaitFor(t, 10*time.Second, "a FLOWS_DEPLOYED audit record by oper from the editor", func() error {
		code, ab := h.Do(t, "GET", "/api/audit?action=FLOWS_DEPLOYED", h.AdminToken, nil)
		if code != 200 || !strings.Contains(string(ab), `"username":"oper"`) || !strings.Contains(string(ab), `"source":"editor"`) {
			return fmt.Errorf("%d %.600s", code, ab)
		}
		return nil
	})
	code, fb := h.Do(t, "GET", "/api/instances/ed/flows", h.AdminToken, nil)
	if code != 200 || !strings.Contains(string(fb), "v2-editor") {
		t.Errorf("the instance's flows after the editor deploy: %d %.300s", code, fb)
	}
	testenv.WaitFor(t, time.Minute, "both replicas answer v2-editor", func() error {
		var v struct {
			Allocations []struct {
				Address string `json:"address"`
			} `json:"allocations"`
		}
		h.JSON(t, "GET", "/api/instances/ed", nil, 200, &v)
		if len(v.Allocations) != 2 {
			return fmt.Errorf("%d replicas", len(v.Allocations))
		}
		for _, a := range v.Allocations {
			code, body, err := get("http://" + a.Address + "/hello")
			if err != nil || !strings.Contains(body, "v2-editor") {
				return fmt.Errorf("replica at %s: %d %s %v", a.Address, code, body, err)
			}
		}
		return nil
	})
	logs := func() string {
		_, b0 := h.Do(t, "GET", "/api/instances/ed/logs?tail=0&replica=0", h.AdminToken, nil)
		_, b1 := h.Do(t, "GET", "/api/instances/ed/logs?tail=0&replica=1", h.AdminToken, nil)
		return string(b0) + string(b1)
	}
	testenv.WaitFor(t, 10*time.Second, "Node-RED's audit log naming the hub user", func() error {
		if l := logs(); !strings.Contains(l, `"event":"flows.set"`) || !strings.Contains(l, `"username":"oper"`) {
			return fmt.Errorf("runtime log lacks flows.set by oper: %s", l[max(0, len(l)-3000):])
		}
		return nil
	})

	// A VIEWER reads, and Node-RED refuses its deploy.
	v := openEditor(t, h, viewer, "ed")
	if v.perm != "read" {
		t.Errorf("VIEWER's editor permission %q, want read", v.perm)
	}
	if _, body, _ := v.do(t, "GET", "/settings", nil, nil); !strings.Contains(body, `"permissions":"read"`) {
		t.Errorf("VIEWER's settings: %.300s", body)
	}
	if code, body := v.deploy(t, "viewer-was-here"); code != http.StatusUnauthorized {
		t.Errorf("VIEWER's deploy = %d %s, want 401", code, body)
	}
	if _, body := h.Do(t, "GET", "/api/instances/ed/flows", h.AdminToken, nil); strings.Contains(string(body), "viewer-was-here") {
		t.Error("the VIEWER's deploy changed the flows")
	}
	// The editor session is one instance's.
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "other", "desired_state": "stopped"}, 201, nil)
	other := &editorClient{h: h, name: "other", cookie: e.cookie}
	if code, body, _ := other.do(t, "GET", "/settings", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("ed's editor session on other = %d %.200s, want 401", code, body)
	}

	// Password guesses: the runtimes' login is reachable through no hub
	// path; the hub's own login is limited.
	for _, p := range []string{"/i/ed/auth/token", "/i/ed/redforge-admin/auth/token"} {
		if code, _ := h.Do(t, "POST", p, "", map[string]string{"username": "redforge-hub", "password": "guess"}); code != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", p, code)
		}
	}
	limited := false
	for i := range 12 {
		code, _ := h.Do(t, "POST", "/api/auth/login", "", map[string]string{"username": "oper", "password": fmt.Sprint("guess-", i)})
		if code == http.StatusTooManyRequests {
			limited = true
			break
		}
		if code != http.StatusUnauthorized {
			t.Fatalf("password guess %d = %d, want 401 or 429", i, code)
		}
	}
	if !limited {
		t.Error("12 password guesses were all answered: no hub login limit")
	}
}

// TestEditorDeployRefusedWhileReplaced: while a deployment replaces the
// runtime the editor edits, a deploy in the editor is refused with a
// message saying so, and nothing changes.
func TestEditorDeployRefusedWhileReplaced(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "busy"}, 201, nil)
	// Flows that implement the contract themselves and never ack a drain:
	// the deployment stays in DRAIN for its drain timeout.
	stuck := json.RawMessage(`[
 {"id":"pf-tab","type":"tab","label":"stuck"},
 {"id":"st-broker","type":"mqtt-broker","broker":"redforge-hub","port":"1883","clientid":"","autoConnect":true,"protocolVersion":"4","keepalive":"60","cleansession":true},
 {"id":"st-ctl","type":"mqtt in","z":"pf-tab","topic":"${REDFORGE_INSTANCE}/control","qos":"1","datatype":"json","broker":"st-broker","inputs":0,"wires":[["st-ack"]]},
 {"id":"st-ack","type":"function","z":"pf-tab","func":"if (msg.payload.mode === 'drain') { return null; }\nmsg.payload = {mode: msg.payload.mode, inflight: 0};\nreturn msg;","outputs":1,"wires":[["st-out"]]},
 {"id":"st-out","type":"mqtt out","z":"pf-tab","topic":"${REDFORGE_INSTANCE}/control/ack","qos":"1","broker":"st-broker","wires":[]},
 {"id":"pf-in","type":"http in","z":"pf-tab","url":"/hello","method":"get","wires":[["pf-set"]]},
 {"id":"pf-set","type":"change","z":"pf-tab","rules":[{"t":"set","p":"payload","pt":"msg","to":"{\"version\":\"v1\"}","tot":"json"}],"wires":[["pf-out"]]},
 {"id":"pf-out","type":"http response","z":"pf-tab","wires":[]}
]`)
	h.JSON(t, "PUT", "/api/instances/busy/flows", stuck, 200, nil)
	e := openEditor(t, h, h.AdminToken, "busy")
	testenv.WaitFor(t, time.Minute, "the editor", func() error {
		if code, body, _ := e.do(t, "GET", "/settings", nil, nil); code != 200 {
			return fmt.Errorf("%d %.200s", code, body)
		}
		return nil
	})
	var d bgDeployment
	h.JSON(t, "POST", "/api/deployments", map[string]any{"instance": "busy", "flows": stuck, "drain_timeout": "20s", "rollback_window": "0s"}, 201, &d)
	testenv.WaitFor(t, 30*time.Second, "the deployment draining", func() error {
		h.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &d)
		if d.Phase != "DRAIN" || d.Status != "running" {
			return fmt.Errorf("%s %s", d.Phase, d.Status)
		}
		return nil
	})
	code, body := e.deploy(t, "during-the-deployment")
	if code != http.StatusLocked || !strings.Contains(body, "being replaced by a deployment") {
		t.Errorf("editor deploy during the deployment = %d %s, want 423 saying the runtime is being replaced", code, body)
	}
	testenv.WaitFor(t, time.Minute, "the deployment to end", func() error {
		h.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &d)
		if d.Status == "running" || d.Status == "pending" {
			return fmt.Errorf("%s %s", d.Phase, d.Status)
		}
		return nil
	})
	if _, body := h.Do(t, "GET", "/api/instances/busy/flows", h.AdminToken, nil); strings.Contains(string(body), "during-the-deployment") {
		t.Error("the refused deploy changed the flows")
	}
}
