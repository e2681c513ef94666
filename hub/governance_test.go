package hub_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestEveryMutationIsAuditedOnce performs each kind of mutating API call
// once and expects exactly one audit record per action.
func TestEveryMutationIsAuditedOnce(t *testing.T) {
	for _, backend := range hubtest.Backends {
		t.Run(backend, func(t *testing.T) {
			testEveryMutationIsAuditedOnce(t, hubtest.Start(t, hubtest.WithBackend(t, backend)))
		})
	}
}

func testEveryMutationIsAuditedOnce(t *testing.T, h *hubtest.Hub) { // logs in once: LOGIN_SUCCEEDED
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "audited", "desired_state": "stopped"}, 201, &inst)
	h.JSON(t, "PATCH", "/api/instances/audited", map[string]any{"env": map[string]string{"A": "1"}}, 200, nil)
	h.JSON(t, "POST", "/api/instances/audited/stop", nil, 202, nil)
	var user struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/users", map[string]string{"username": "carol", "password": "carols-password-1", "role": "VIEWER"}, 201, &user)
	h.JSON(t, "PATCH", "/api/users/"+user.ID, map[string]string{"role": "OPERATOR"}, 200, nil)
	var tok struct {
		Info struct {
			ID string `json:"id"`
		} `json:"info"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]string{"name": "ci", "role": "VIEWER"}, 201, &tok)
	h.JSON(t, "DELETE", "/api/tokens/"+tok.Info.ID, nil, 200, nil)
	h.JSON(t, "DELETE", "/api/users/"+user.ID, nil, 200, nil)
	h.JSON(t, "DELETE", "/api/instances/audited", nil, 200, nil)
	if code, _ := h.Do(t, "POST", "/api/auth/login", "", map[string]string{"username": "admin", "password": "not-the-password"}); code != 401 {
		t.Fatalf("bad login = %d", code)
	}
	failedLogins := 1
	if code, _ := h.Do(t, "POST", "/api/instances", h.AdminToken, map[string]any{"name": "Bad Name"}); code != 400 {
		t.Fatalf("refused create = %d", code) // refused: must not be audited as a change
	}

	var resp struct {
		Records []struct {
			Action       string `json:"action"`
			Username     string `json:"username"`
			ResourceID   string `json:"resource_id"`
			IP           string `json:"ip"`
			PrevHash     string `json:"prev_hash"`
			Hash         string `json:"hash"`
			ResourceType string `json:"resource_type"`
		} `json:"records"`
	}
	h.JSON(t, "GET", "/api/audit?limit=1000", nil, 200, &resp)
	got := map[string]int{}
	for _, r := range resp.Records {
		got[r.Action]++
		if r.Hash == "" || r.IP == "" {
			t.Errorf("record %+v lacks hash or ip", r)
		}
	}
	want := map[string]int{
		"LOGIN_SUCCEEDED": 1, "LOGIN_FAILED": failedLogins,
		"INSTANCE_CREATED": 1, "INSTANCE_UPDATED": 1, "INSTANCE_STOPPED": 1, "INSTANCE_DESTROYED": 1,
		"USER_CREATED": 1, "ROLE_ASSIGNED": 1, "USER_DELETED": 1, "TOKEN_CREATED": 1, "TOKEN_REVOKED": 1,
	}
	for a, n := range want {
		if got[a] != n {
			t.Errorf("%s recorded %d times, want %d", a, got[a], n)
		}
	}
	for a := range got {
		if _, ok := want[a]; !ok {
			t.Errorf("unexpected audit action %s ×%d", a, got[a])
		}
	}
	var verify struct {
		OK      bool  `json:"ok"`
		Checked int64 `json:"checked"`
	}
	h.JSON(t, "GET", "/api/audit/verify", nil, 200, &verify)
	if !verify.OK || verify.Checked != int64(len(resp.Records)) {
		t.Fatalf("verify = %+v over %d records", verify, len(resp.Records))
	}
}

func TestComplianceReports(t *testing.T) {
	for _, backend := range hubtest.Backends {
		t.Run(backend, func(t *testing.T) { testComplianceReports(t, hubtest.Start(t, hubtest.WithBackend(t, backend))) })
	}
}

func testComplianceReports(t *testing.T, h *hubtest.Hub) {
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "reported", "desired_state": "stopped"}, 201, nil)
	start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	var rep struct {
		Type  string `json:"type"`
		Chain struct {
			OK bool `json:"ok"`
		} `json:"chain"`
		ByAction map[string]int `json:"by_action"`
	}
	h.JSON(t, "POST", "/api/reports/generate", map[string]string{"type": "soc2_change", "start": start, "end": end}, 200, &rep)
	if !rep.Chain.OK || rep.ByAction["INSTANCE_CREATED"] != 1 || rep.ByAction["LOGIN_SUCCEEDED"] != 0 {
		t.Fatalf("soc2 report = %+v", rep)
	}
	rep.ByAction = nil // a fresh map: JSON decoding merges into an existing one
	h.JSON(t, "POST", "/api/reports/generate", map[string]string{"type": "hipaa_access", "start": start, "end": end}, 200, &rep)
	if rep.ByAction["LOGIN_SUCCEEDED"] != 1 || rep.ByAction["INSTANCE_CREATED"] != 0 {
		t.Fatalf("hipaa report = %+v", rep)
	}
	code, body := h.Do(t, "POST", "/api/reports/generate", h.AdminToken, map[string]string{"type": "gdpr_access", "start": start, "end": end, "format": "csv"})
	if code != 200 || !strings.HasPrefix(string(body), "id,time,user_id") {
		t.Fatalf("csv report = %d %.100s", code, body)
	}
	code, body = h.Do(t, "POST", "/api/reports/generate", h.AdminToken, map[string]string{"type": "soc2_change", "start": start, "end": end, "format": "pdf"})
	if code != 200 || !strings.HasPrefix(string(body), "%PDF-") || !strings.Contains(string(body), "%%EOF") {
		t.Fatalf("pdf report = %d %.40q", code, body)
	}
	for _, c := range []struct{ body, field string }{
		{`{"type":"iso9001","start":"` + start + `","end":"` + end + `"}`, "type"},
		{`{"type":"soc2_change"}`, "start"},
		{`{"type":"soc2_change","start":"` + end + `","end":"` + start + `"}`, "end"},
		{`{"type":"soc2_change","start":"` + start + `","end":"` + end + `","format":"docx"}`, "format"},
	} {
		code, body := h.Do(t, "POST", "/api/reports/generate", h.AdminToken, []byte(c.body))
		var e struct {
			Error struct {
				Field string `json:"field"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if code != http.StatusBadRequest || e.Error.Field != c.field {
			t.Errorf("report %s = %d %s, want 400 naming %s", c.body, code, body, c.field)
		}
	}
}
