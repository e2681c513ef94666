package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// rawDo sends body with the given Content-Type and extra headers, and
// returns the status, body and headers of the answer.
func rawDo(t *testing.T, h *hubtest.Hub, method, path, token, ctype string, body []byte, hdr map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, h.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// apiError is the error body of the API.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// enrollEdge enrolls an edge through the API and returns its id and credential.
func enrollEdge(t *testing.T, h *hubtest.Hub) (id, credential string) {
	t.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/edges/tokens", nil, 201, &tok)
	var en struct {
		EdgeID     string `json:"edge_id"`
		Credential string `json:"credential"`
	}
	code, body := h.Do(t, "POST", "/api/edges/enroll", "", map[string]string{"token": tok.Token})
	if code != 201 || json.Unmarshal(body, &en) != nil {
		t.Fatalf("enroll: %d %s", code, body)
	}
	return en.EdgeID, en.Credential
}

// TestSecurityStrictJSONBodies (issue 13.12): every route that decodes a
// JSON body refuses a body not declared as JSON with 415, even when it is
// valid JSON, and a body with a duplicate key at any depth with 400 naming
// the key (encoding/json would keep the last one silently). The protobuf
// batch route refuses a text body with 415 too.
func TestSecurityStrictJSONBodies(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "strict", "desired_state": "stopped"}, 201, nil)
	edgeID, edgeCred := enrollEdge(t, h)
	routes := []struct {
		method, path, token string
		valid, dup, field   string
	}{
		{"POST", "/api/auth/login", "", `{"username":"admin","password":"x"}`,
			`{"username":"admin","password":"x","password":"y"}`, "password"},
		{"POST", "/api/instances", h.AdminToken, `{"name":"strict2","desired_state":"stopped"}`,
			`{"name":"strict3","resources":{"memory_mb":256,"memory_mb":128}}`, "resources.memory_mb"},
		{"PATCH", "/api/instances/strict", h.AdminToken, `{"env":{"A":"1"}}`,
			`{"env":{"A":"1","A":"2"}}`, "env.A"},
		{"PUT", "/api/instances/strict/flows", h.AdminToken, `[{"id":"t1","type":"tab"}]`,
			`[{"id":"t1","type":"tab"},{"id":"n1","type":"inject","z":"t1","z":"t2"}]`, "1.z"},
		{"PUT", "/api/edges/" + edgeID + "/config", h.AdminToken, `{"flows":[]}`,
			`{"flows":[],"settings":{"site":"a","nested":{"k":1,"k":2}}}`, "settings.nested.k"},
		{"POST", "/api/checkpoints", h.AdminToken, `{"instance_id":"strict","workflow_id":"w","step":"s","state":{}}`,
			`{"instance_id":"strict","workflow_id":"w","step":"s","state":{"a":[{"b":1,"b":1}]}}`, "state.a.0.b"},
		{"POST", "/api/sync/vectors", edgeCred, `{"stream":"audit","first_seq":1,"records":[]}`,
			`{"stream":"audit","stream":"vectors","first_seq":1,"records":[]}`, "stream"},
		{"POST", "/api/sync/heartbeat", edgeCred, `{"applied_config_version":0}`,
			`{"applied_config_version":0,"queue_depth":{"audit":1,"audit":2}}`, "queue_depth.audit"},
	}
	for _, r := range routes {
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", ""} {
			code, body, _ := rawDo(t, h, r.method, r.path, r.token, ct, []byte(r.valid), nil)
			if code != http.StatusUnsupportedMediaType || !strings.Contains(string(body), "unsupported_media_type") {
				t.Errorf("%s %s as %q: %d %s, want 415", r.method, r.path, ct, code, body)
			}
		}
		code, body, _ := rawDo(t, h, r.method, r.path, r.token, "application/json; charset=utf-8", []byte(r.dup), nil)
		var e apiError
		_ = json.Unmarshal(body, &e)
		if code != http.StatusBadRequest || e.Error.Field != r.field || !strings.Contains(e.Error.Message, "duplicate key") {
			t.Errorf("%s %s with a duplicate key: %d %s, want 400 naming field %s", r.method, r.path, code, body, r.field)
		}
	}
	code, body, _ := rawDo(t, h, "POST", "/api/sync/batches", edgeCred, "text/plain", []byte("{}"), nil)
	if code != http.StatusUnsupportedMediaType {
		t.Errorf("POST /api/sync/batches as text/plain: %d %s, want 415", code, body)
	}
	// The instance kept its env: the refused PATCH changed nothing.
	var inst struct {
		Env map[string]string `json:"env"`
	}
	h.JSON(t, "GET", "/api/instances/strict", nil, 200, &inst)
	if len(inst.Env) != 0 {
		t.Errorf("refused bodies changed the instance: env %v", inst.Env)
	}
}

// TestSecurityEdgeConfigSettings (issue 13.9): an edge's desired settings
// follow the rules of an instance's Node-RED settings: the reserved keys
// (adminAuth, httpAdminRoot …) and unknown context store modules are
// refused with 400 naming the field, and nothing is stored.
func TestSecurityEdgeConfigSettings(t *testing.T) {
	h := hubtest.Start(t)
	edgeID, _ := enrollEdge(t, h)
	path := "/api/edges/" + edgeID + "/config"
	for _, c := range []struct{ settings, field string }{
		{`{"adminAuth":null}`, "settings.adminAuth"},
		{`{"httpAdminRoot":"/admin-elsewhere"}`, "settings.httpAdminRoot"},
		{`{"credentialSecret":"x"}`, "settings.credentialSecret"},
		{`{"contextStorage":{"evil":{"module":"/tmp/evil.js"}}}`, "settings.contextStorage.evil.module"},
	} {
		code, body, _ := rawDo(t, h, "PUT", path, h.AdminToken, "application/json", []byte(`{"flows":[],"settings":`+c.settings+`}`), nil)
		var e apiError
		_ = json.Unmarshal(body, &e)
		if code != http.StatusBadRequest || e.Error.Field != c.field {
			t.Errorf("settings %s: %d %s, want 400 naming %s", c.settings, code, body, c.field)
		}
	}
	var cfg struct {
		Version int `json:"version"`
	}
	h.JSON(t, "GET", path, nil, 200, &cfg)
	if cfg.Version != 0 {
		t.Fatalf("refused settings stored version %d", cfg.Version)
	}
	h.JSON(t, "PUT", path, map[string]any{"flows": []any{}, "settings": map[string]any{"site": "plant-7",
		"contextStorage": map[string]any{"default": map[string]any{"module": "memory"}}}}, 200, &cfg)
	if cfg.Version != 1 {
		t.Fatalf("allowed settings: version %d, want 1", cfg.Version)
	}
}

// TestSecurityCheckpointClockSkew (issue 13.10): a checkpoint dated more
// than 24 h from the hub's clock is refused with 400 naming time, so none
// dated 9999-12-31 can stay "latest" for ever; one within the bound is
// kept, and the newer one is latest.
func TestSecurityCheckpointClockSkew(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "skew", "desired_state": "stopped"}, 201, nil)
	now := time.Now().UTC()
	for _, at := range []string{"9999-12-31T23:59:59Z", now.Add(25 * time.Hour).Format(time.RFC3339), now.Add(-25 * time.Hour).Format(time.RFC3339)} {
		code, body := h.Do(t, "POST", "/api/checkpoints", h.AdminToken, map[string]any{"instance_id": "skew", "workflow_id": "w", "step": "future", "time": at})
		var e apiError
		_ = json.Unmarshal(body, &e)
		if code != http.StatusBadRequest || e.Error.Field != "time" {
			t.Errorf("checkpoint at %s: %d %s, want 400 naming time", at, code, body)
		}
	}
	h.JSON(t, "POST", "/api/checkpoints", map[string]any{"instance_id": "skew", "workflow_id": "w", "step": "earlier", "time": now.Add(-time.Hour).Format(time.RFC3339)}, 201, nil)
	h.JSON(t, "POST", "/api/checkpoints", map[string]any{"instance_id": "skew", "workflow_id": "w", "step": "now"}, 201, nil)
	var latest struct {
		Checkpoints []struct {
			Step string `json:"step"`
		} `json:"checkpoints"`
	}
	h.JSON(t, "GET", "/api/checkpoints?instance=skew", nil, 200, &latest)
	if len(latest.Checkpoints) != 1 || latest.Checkpoints[0].Step != "now" {
		t.Fatalf("latest checkpoints %+v, want the one posted now", latest.Checkpoints)
	}
}

// loginAs posts a login from the test client with an optional
// X-Forwarded-For and returns the status and Retry-After.
func loginAs(t *testing.T, h *hubtest.Hub, username, password, forwardedFor string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	hdr := map[string]string{}
	if forwardedFor != "" {
		hdr["X-Forwarded-For"] = forwardedFor
	}
	code, _, resp := rawDo(t, h, "POST", "/api/auth/login", "", "application/json", body, hdr)
	return code, resp.Get("Retry-After")
}

// failedLoginIPs returns the addresses of the LOGIN_FAILED audit records.
func failedLoginIPs(t *testing.T, h *hubtest.Hub) map[string]int {
	t.Helper()
	var recs struct {
		Records []struct {
			IP string `json:"ip"`
		} `json:"records"`
	}
	h.JSON(t, "GET", "/api/audit?action=LOGIN_FAILED&limit=100", nil, 200, &recs)
	ips := map[string]int{}
	for _, r := range recs.Records {
		ips[r.IP]++
	}
	return ips
}

// TestSecurityLoginLimits (issue 13.2): by default no proxy is trusted, so
// 25 wrong passwords sent with a new X-Forwarded-For each still meet the
// per-address limit (429) and the audit log records the real peer
// address; with --trusted-proxies naming the test client the header is
// honoured. Beside it, a per-account delay: after three failures for one
// username the next attempt waits 1 s, then 2 s (429 with Retry-After,
// from any address, and on a second hub sharing the Redis), and the right
// password after the delay logs in: there is no lockout.
func TestSecurityLoginLimits(t *testing.T) {
	t.Run("forwarded-for ignored by default", func(t *testing.T) {
		h := hubtest.Start(t) // Start logs in once from 127.0.0.1
		limited := 0
		for i := range 25 {
			code, _ := loginAs(t, h, fmt.Sprint("nobody-", i), "wrong", fmt.Sprintf("203.0.113.%d", i+1))
			if code == http.StatusTooManyRequests {
				limited++
			} else if code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d", i, code)
			}
		}
		if limited != 25-(api.LoginAttemptsPerMinute-1) {
			t.Fatalf("%d of 25 attempts with forged X-Forwarded-For got 429, want %d", limited, 25-(api.LoginAttemptsPerMinute-1))
		}
		if ips := failedLoginIPs(t, h); len(ips) != 1 || ips["127.0.0.1"] != api.LoginAttemptsPerMinute-1 {
			t.Fatalf("audit records failed logins from %v, want only the peer 127.0.0.1", ips)
		}
	})

	t.Run("per-account delay, header honoured from a trusted proxy", func(t *testing.T) {
		redis := testenv.Redis(t)
		// One clock for both hubs' login delay, moved by the test: the
		// delays are seconds, and a loaded machine must not decide them.
		var clockMu sync.Mutex
		now := time.Now()
		clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
		advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
		shared := func(c *hub.Config) { c.Redis, c.TrustedProxies, c.LoginClock = redis, "127.0.0.1", clock }
		a, b := hubtest.Start(t, shared), hubtest.Start(t, shared)
		ip := 0
		from := func() string { ip++; return fmt.Sprintf("198.51.100.%d", ip) } // a new address for each attempt
		for i := range api.LoginFreeAttempts {
			if code, _ := loginAs(t, a, "admin", "wrong", from()); code != http.StatusUnauthorized {
				t.Fatalf("failure %d: %d, want 401", i+1, code)
			}
		}
		// The right password during the delay is answered 429, on the other hub too.
		for _, h := range []*hubtest.Hub{a, b} {
			if code, retry := loginAs(t, h, "admin", hubtest.AdminPassword, from()); code != http.StatusTooManyRequests || retry != "1" {
				t.Fatalf("login during the delay: %d Retry-After %q, want 429 and 1", code, retry)
			}
		}
		if ips := failedLoginIPs(t, a); len(ips) != api.LoginFreeAttempts || ips["198.51.100.1"] != 1 {
			t.Fatalf("audit records failed logins from %v, want the forwarded addresses", ips)
		}
		// After the delay a wrong password is checked again, and doubles it.
		advance(api.LoginDelayBase)
		if code, _ := loginAs(t, a, "admin", "wrong", from()); code != http.StatusUnauthorized {
			t.Fatalf("a wrong password after the delay: %d, want 401", code)
		}
		if code, retry := loginAs(t, b, "admin", "wrong", from()); code != http.StatusTooManyRequests || retry != "2" {
			t.Fatalf("after the fourth failure: %d Retry-After %q, want 429 and 2", code, retry)
		}
		// No lockout: the right password after the delay logs in, and clears the count.
		advance(2 * api.LoginDelayBase)
		if code, _ := loginAs(t, b, "admin", hubtest.AdminPassword, from()); code != http.StatusOK {
			t.Fatalf("the right password after the delay: %d, want 200", code)
		}
		if code, _ := loginAs(t, a, "admin", "wrong", from()); code != http.StatusUnauthorized {
			t.Fatalf("a failure after a success: %d, want 401 (the count starts again)", code)
		}
	})
}

// envFlow answers GET /env with the runtime's API_KEY environment variable.
const envFlow = `[
 {"id":"tab1","type":"tab","label":"env"},
 {"id":"in1","type":"http in","z":"tab1","url":"/env","method":"get","wires":[["fn1"]]},
 {"id":"fn1","type":"change","z":"tab1","rules":[{"t":"set","p":"payload","pt":"msg","to":"API_KEY","tot":"env"}],"wires":[["out1"]]},
 {"id":"out1","type":"http response","z":"tab1","statusCode":"200","wires":[]}
]`

// TestSecurityInstanceEnvSecrets (issue 13.4): env values are shown only
// to callers who may manage the instance (a VIEWER sees the names with
// values masked, in GET, the list and the created event); secret_env
// values are never returned to anyone, only their names, and never reach
// the audit log or its export; yet the runtime gets them in its
// environment, and a replaced value reaches it.
func TestSecurityInstanceEnvSecrets(t *testing.T) {
	h := hubtest.Start(t)
	viewer := h.CreateUser(t, "envviewer", "VIEWER")
	operator := h.CreateUser(t, "envoperator", "OPERATOR")
	created := dialEvents(t, h, "instance.created")
	const plain, secret, rotated = "plain-value-1", "s3cret-value-1", "s3cret-value-2"
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "envsec", "env": map[string]string{"PLAIN": plain},
		"secret_env": map[string]string{"API_KEY": secret}}, 201, &inst)

	_ = created.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, ev, err := created.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for instance.created: %v", err)
		}
		if !strings.Contains(string(ev), `"instance.created"`) {
			continue // hello
		}
		if !strings.Contains(string(ev), "PLAIN") || strings.Contains(string(ev), plain) || strings.Contains(string(ev), secret) {
			t.Errorf("instance.created event: %s; want env names without values", ev)
		}
		break
	}
	for _, c := range []struct {
		who, token, path string
		showsPlain       bool
	}{
		{"viewer", viewer, "/api/instances/envsec", false},
		{"viewer", viewer, "/api/instances", false},
		{"operator", operator, "/api/instances/envsec", true},
		{"admin", h.AdminToken, "/api/instances/envsec", true},
		{"admin", h.AdminToken, "/api/instances", true},
	} {
		code, body := h.Do(t, "GET", c.path, c.token, nil)
		s := string(body)
		switch {
		case code != 200:
			t.Errorf("GET %s as %s: %d %s", c.path, c.who, code, s)
		case strings.Contains(s, secret):
			t.Errorf("GET %s as %s returns the secret env value: %s", c.path, c.who, s)
		case !strings.Contains(s, `"secret_env_keys":["API_KEY"]`) || !strings.Contains(s, `"PLAIN"`):
			t.Errorf("GET %s as %s does not name the variables: %s", c.path, c.who, s)
		case strings.Contains(s, plain) != c.showsPlain:
			t.Errorf("GET %s as %s shows the env value: %v, want %v: %s", c.path, c.who, !c.showsPlain, c.showsPlain, s)
		case !c.showsPlain && !strings.Contains(s, `"env_masked":true`):
			t.Errorf("GET %s as %s: masked env not marked: %s", c.path, c.who, s)
		}
	}
	if code, body := h.Do(t, "PATCH", "/api/instances/envsec", h.AdminToken, map[string]any{"secret_env": map[string]string{"PLAIN": "x"}}); code != 400 || !strings.Contains(string(body), `"field":"secret_env.PLAIN"`) {
		t.Errorf("a name both plain and secret: %d %s, want 400 naming secret_env.PLAIN", code, body)
	}

	// The runtime has the secret in its environment.
	testenv.WaitFor(t, 90*time.Second, "the instance to run", func() error {
		h.JSON(t, "GET", "/api/instances/envsec", nil, 200, &inst)
		if inst.Observed.Status != "running" || inst.Observed.Port == 0 {
			return fmt.Errorf("status %q", inst.Observed.Status)
		}
		return nil
	})
	envOf := func(want string) {
		t.Helper()
		testenv.WaitFor(t, 90*time.Second, "the runtime's API_KEY to be "+want, func() error {
			var in instance
			h.JSON(t, "GET", "/api/instances/envsec", nil, 200, &in)
			if in.Observed.Status != "running" {
				return fmt.Errorf("status %q", in.Observed.Status)
			}
			// A changed environment recreates the runtime: deploy the probe flow again.
			if code, body := h.Do(t, "PUT", "/api/instances/envsec/flows", h.AdminToken, []byte(envFlow)); code != 200 {
				return fmt.Errorf("deploy the env flow: %d %s", code, body)
			}
			code, body, err := get(fmt.Sprintf("http://127.0.0.1:%d/env", in.Observed.Port))
			if err != nil || code != 200 || body != want {
				return fmt.Errorf("GET /env = %d %q %v", code, body, err)
			}
			return nil
		})
	}
	envOf(secret)
	// Replacing the value (the only way to change it) reaches the runtime.
	h.JSON(t, "PATCH", "/api/instances/envsec", map[string]any{"secret_env": map[string]string{"API_KEY": rotated}}, 200, nil)
	envOf(rotated)

	for _, path := range []string{"/api/audit?limit=100", "/api/audit/export?format=json", "/api/audit/export?format=csv"} {
		code, body := h.Do(t, "GET", path, h.AdminToken, nil)
		if code != 200 || strings.Contains(string(body), secret) || strings.Contains(string(body), rotated) || strings.Contains(string(body), plain) {
			t.Errorf("GET %s: %d, carries an env value: %.300s", path, code, body)
		}
		if code == 200 && !strings.Contains(string(body), "API_KEY") {
			t.Errorf("GET %s does not name the secret that changed: %.300s", path, body)
		}
	}
}

// TestSecurityTrustedProxiesConfig: --trusted-proxies takes IPs and CIDRs
// (REDFORGE_TRUSTED_PROXIES too), is empty by default, and a bad entry
// stops the hub with a message naming the flag.
func TestSecurityTrustedProxiesConfig(t *testing.T) {
	env := func(k string) string {
		if k == "REDFORGE_TRUSTED_PROXIES" {
			return "10.0.0.0/8, 127.0.0.1"
		}
		return ""
	}
	cfg, err := hub.ParseConfig(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.TrustedProxyList(); len(got) != 2 || got[0] != "10.0.0.0/8" || got[1] != "127.0.0.1" {
		t.Fatalf("trusted proxies from the environment: %q", got)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid proxies refused: %v", err)
	}
	if def := hub.DefaultConfig(); len(def.TrustedProxyList()) != 0 {
		t.Fatalf("default trusts %q, want none", def.TrustedProxyList())
	}
	cfg, _ = hub.ParseConfig([]string{"--trusted-proxies", "proxy.example.com"}, func(string) string { return "" }, io.Discard)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Fatalf("a host name as proxy: %v, want an error naming --trusted-proxies", err)
	}
}
