package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// applier applies commands at increasing indexes, like the Raft FSM.
type applier struct {
	tb    testing.TB
	s     *State
	index uint64
}

func newApplier(tb testing.TB) *applier { return &applier{tb: tb, s: NewState()} }

func (a *applier) apply(cmd Command) (any, error) {
	a.index++
	return a.s.Apply(a.index, cmd)
}

// must applies cmd and fails the test on an error.
func (a *applier) must(cmd Command) any {
	a.tb.Helper()
	res, err := a.apply(cmd)
	if err != nil {
		a.tb.Fatalf("apply %s: %v", cmd.Type, err)
	}
	return res
}

// fails applies cmd and fails the test unless the error wraps want.
func (a *applier) fails(cmd Command, want error) error {
	a.tb.Helper()
	_, err := a.apply(cmd)
	if !errors.Is(err, want) {
		a.tb.Fatalf("apply %s: error %v, want %v", cmd.Type, err, want)
	}
	return err
}

// dump returns every row of every table, including the index table.
func dump(s *State) map[string][]any {
	tx := s.read(nil)
	out := map[string][]any{}
	for _, table := range tableOrder {
		it, err := tx.Get(table, "id")
		mustBeOK(err)
		for obj := it.Next(); obj != nil; obj = it.Next() {
			out[table] = append(out[table], obj)
		}
	}
	return out
}

func assertSameState(tb testing.TB, got, want *State) {
	tb.Helper()
	g, w := dump(got), dump(want)
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", " ")
		wj, _ := json.MarshalIndent(w, "", " ")
		tb.Fatalf("states differ:\ngot  %s\nwant %s", gj, wj)
	}
}

func persist(tb testing.TB, s *State) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		tb.Fatalf("persist: %v", err)
	}
	return buf.Bytes()
}

// fixtureCommands fills every table, with updates and deletes so that
// create and modify indexes differ and the index table has every table.
func fixtureCommands() []Command {
	inst := Instance{
		ID: "i-1", Name: "orders", Region: "eu-west", Placement: PlacementFailover, Driver: "docker",
		Image: "nodered/node-red:4.1", NodeREDVersion: "4.1.0", DesiredState: DesiredRunning,
		Resources: Resources{CPU: 0.5, MemoryMB: 256}, Env: map[string]string{"TZ": "UTC", "MODE": "prod"},
		FlowsVersion: "v1", CreatedAt: t0, UpdatedAt: t0,
	}
	inst2 := inst
	inst2.FlowsVersion, inst2.UpdatedAt = "v2", t0.Add(time.Hour)
	inst2.Nodes = []NodePackage{{Name: "@acme/nodes", Version: "2.0.1", Source: NodeSourceUpload, SHA256: "ab12", Hub: "hub-a"}}
	dep := Deployment{
		ID: "d-1", InstanceID: "i-1", Strategy: "blue_green", Phase: PhaseVerify, Status: DeploymentRunning,
		Progress: 60, FromFlowsVersion: "v1", ToFlowsVersion: "v2", StartedBy: "u-1", StartedAt: t0, UpdatedAt: t0,
		History: []PhaseRecord{{Phase: PhaseDrain, Status: DeploymentRunning, At: t0}, {Phase: PhaseDeploy, Status: DeploymentRunning, At: t0, Message: "green up"}},
		Smoke:   json.RawMessage(`{"health":"ok","flows":3}`),
	}
	return []Command{
		PutRegion(Region{Name: "eu-west", Hubs: []string{"hub-a:3000", "hub-b:3000"}}),
		PutRegion(Region{Name: "us-east"}),
		PutSetting("retention_days", 30),
		PutSetting("banner", map[string]string{"text": "hello"}),
		PutUser(User{ID: "u-1", Username: "admin", Email: "a@example.com", PasswordHash: "$2a$hash", Role: RoleAdmin, CreatedAt: t0, UpdatedAt: t0}),
		PutUser(User{ID: "u-2", Username: "viewer", Role: RoleViewer, Disabled: true, CreatedAt: t0, UpdatedAt: t0}),
		UpsertInstance(inst),
		UpsertInstance(Instance{ID: "i-2", Name: "billing", CreatedAt: t0, UpdatedAt: t0}),
		SetInstanceObserved("i-1", Observed{Status: "running", RuntimeID: "c0ffee", Port: 1880, Since: t0, Message: "healthy"}),
		UpsertInstance(inst2),
		PutDeployment(dep),
		PutDeployment(Deployment{ID: "d-2", InstanceID: "i-2", Status: DeploymentPending, StartedAt: t0, UpdatedAt: t0}),
		PutAPIToken(APIToken{ID: "t-1", Name: "ci", Hash: "h1", Scope: "instance", Role: RoleOperator, InstanceID: "i-1", CreatedBy: "u-1", CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour)}),
		PutAPIToken(APIToken{ID: "t-2", Name: "ops", Hash: "h2", Role: RoleViewer, CreatedBy: "u-1", CreatedAt: t0}),
		RevokeAPIToken("t-2", t0.Add(time.Minute)),
		PutEnrollmentToken(EnrollmentToken{Hash: "e1", Region: "eu-west", CreatedBy: "u-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}),
		PutEnrollmentToken(EnrollmentToken{Hash: "e2", CreatedAt: t0}),
		EnrollEdge("e1", Edge{ID: "g-1", Name: "pi-1", CredentialHash: "c1", State: EdgePending, CreatedAt: t0, UpdatedAt: t0}, t0.Add(time.Minute)),
		PutEdge(Edge{ID: "g-2", Name: "pi-2", Region: "us-east", State: EdgeOffline, DesiredConfigVersion: 3, CreatedAt: t0, UpdatedAt: t0}),
		RecordEdgeHeartbeat("g-1", t0.Add(2*time.Minute), 7),
		PutRegion(Region{Name: "gone"}),
		DeleteRegion("gone"),
		PutSetting("temp", true),
		DeleteSetting("temp"),
		RegisterHub(Hub{ID: "hub-a", Region: "eu-west", API: "http://10.0.0.1:3000", Raft: "10.0.0.1:7000", Advertise: "10.0.0.1", MemoryMB: 4096}),
		RegisterHub(Hub{ID: "hub-b", Region: "eu-west", API: "http://10.0.0.2:3000"}),
		RegisterHub(Hub{ID: "hub-gone", Region: "us-east"}),
		SetHubDraining("hub-b", true),
		SetHubState("hub-b", HubDown, t0, "no contact for 10s"),
		DeleteHub("hub-gone"),
		ApplyPlan(Plan{Put: []Allocation{
			{ID: "i-1-a", InstanceID: "i-1", Replica: 0, Hub: "hub-a", Region: "eu-west", Reason: "placed", CreatedAt: t0},
			{ID: "i-1-b", InstanceID: "i-1", Replica: 1, Hub: "hub-b", Region: "eu-west", Reason: "placed", CreatedAt: t0},
			{ID: "i-1-c", InstanceID: "i-1", Replica: 2, Hub: "hub-b", Region: "eu-west", Reason: "placed", CreatedAt: t0},
		}}),
		ApplyPlan(Plan{Delete: []string{"i-1-c"}}),
		SetAllocationObserved("i-1-a", "hub-a", AllocObserved{Status: "running", RuntimeID: "4242", Host: "10.0.0.1", Port: 18800, Since: t0, FlowsSHA: FlowsSHA([]byte(`[]`))}),
		PutFlows(Flows{InstanceID: "i-1", Doc: json.RawMessage(`[]`), SHA: FlowsSHA([]byte(`[]`)), Version: 1, By: "admin", At: t0, Credentials: "sealed-f"}),
		PutCredentials(Credentials{InstanceID: "i-1", AdminPassword: "sealed-a", MQTTPassword: "sealed-m", Token: "sealed-t"}, IfIndex(0)),
		PutMove(Move{Instance: "i-2", Name: "billing", Home: "eu-west", To: "us-east", At: t0, Reason: "region down"}),
		PutMove(Move{Instance: "i-1", Name: "orders", Home: "eu-west", To: "us-east", At: t0, Reason: "region down"}),
		DeleteMove("i-1"),
		SetInstanceLive("i-1", "i-2"),
		PutAlertRule(AlertRule{ID: "r-1", Name: "instance down", Metric: "nodered_instance_up", Condition: "<", Threshold: 1,
			Severity: "critical", Channels: []AlertChannel{{Type: "webhook", URL: "http://127.0.0.1:9/hook"}, {Type: "email", To: []string{"ops@example.com"}}},
			Match: map[string]string{"name": "orders"}, CreatedAt: t0, UpdatedAt: t0}, IfIndex(0)),
		PutAlertRule(AlertRule{ID: "r-gone", Name: "gone", Metric: "nodered_instance_up", Condition: "<", Severity: "info"}),
		DeleteAlertRule("r-gone"),
		PutAlert(Alert{ID: "a-1", RuleID: "r-1", RuleName: "instance down", Severity: "critical", Labels: map[string]string{"name": "orders"},
			State: "firing", Active: "r-1/abc", Value: 0, Summary: "orders is down", StartsAt: t0,
			Deliveries: []AlertDelivery{{Event: "firing", Channel: AlertChannel{Type: "webhook", URL: "http://127.0.0.1:9/hook"}, Status: "pending"}}}, IfIndex(0)),
		SetAlertDelivery("a-1", 0, AlertDelivery{Event: "firing", Channel: AlertChannel{Type: "webhook", URL: "http://127.0.0.1:9/hook"}, Status: "sent", Attempts: 1, At: t0}),
		PutAlert(Alert{ID: "a-old", RuleID: "r-1", State: "resolved", StartsAt: t0, EndsAt: t0}),
		DeleteAlerts([]string{"a-old", "a-missing"}),
		PutInstanceSnapshot(InstanceSnapshot{ID: "s-1", InstanceID: "i-1", Name: "before the sale", Flows: json.RawMessage(`[]`),
			FlowsSHA: FlowsSHA([]byte(`[]`)), Credentials: "sealed-c", Settings: json.RawMessage(`{"env":{"TZ":"UTC"}}`),
			Nodes: []NodePackage{{Name: "node-red-contrib-x", Version: "1.0.0", Source: NodeSourceRegistry}}, CreatedBy: "admin", CreatedAt: t0}),
		PutInstanceSnapshot(InstanceSnapshot{ID: "s-2", InstanceID: "i-1", Name: "gone", Flows: json.RawMessage(`[]`), FlowsSHA: FlowsSHA([]byte(`[]`)), CreatedAt: t0}),
		DeleteInstanceSnapshot("s-2"),
		PutLLMProvider(LLMProvider{ID: "local", Kind: "ollama", BaseURL: "http://127.0.0.1:11434", CreatedAt: t0, UpdatedAt: t0}),
		PutLLMProvider(LLMProvider{ID: "openai", Kind: "openai", BaseURL: "https://api.example", APIKey: "rfs1:sealed", CreatedAt: t0, UpdatedAt: t0}),
		PutModel(Model{ID: "llama3.2:v1", Name: "llama3.2", Version: "v1", Provider: "local", Upstream: "llama3.2:3b", Kind: "chat", Status: "active", Current: true, CreatedAt: t0, UpdatedAt: t0}),
		PutModel(Model{ID: "llama3.2:v2", Name: "llama3.2", Version: "v2", Provider: "local", Upstream: "llama3.2:3b-q8", Kind: "chat", Status: "active", Current: true, Previous: "llama3.2:v1", CreatedAt: t0, UpdatedAt: t0}),
		PutModel(Model{ID: "gpt:v1", Name: "gpt", Version: "v1", Provider: "openai", Upstream: "gpt-4o-mini", Kind: "chat", InputPrice: 0.15, OutputPrice: 0.6, Status: "active", Quality: 0.9, QualityBenchmark: "b-1", CreatedAt: t0, UpdatedAt: t0}),
		PutModel(Model{ID: "gone:v1", Name: "gone", Version: "v1", Provider: "openai", Kind: "chat", CreatedAt: t0, UpdatedAt: t0}),
		DeleteModel("gone:v1"),
		PutLLMRoute(LLMRoute{Name: "default", Policy: "cheapest_sla", Candidates: []string{"llama3.2", "gpt:v1"}, MaxP95MS: 500, WindowMS: 30000, CreatedAt: t0, UpdatedAt: t0}),
		PutLLMRoute(LLMRoute{Name: "gone", Policy: "fixed", Candidates: []string{"gpt"}, CreatedAt: t0, UpdatedAt: t0}),
		DeleteLLMRoute("gone"),
		PutLLMBudget(LLMBudget{ID: "instance:i-1", DailyUSD: 5, Action: "downgrade", DowngradeTo: "llama3.2", UpdatedAt: t0}),
		PutLLMBudget(LLMBudget{ID: "route:gone", DailyUSD: 1, Action: "refuse", UpdatedAt: t0}),
		DeleteLLMBudget("route:gone"),
		PutBenchmark(Benchmark{ID: "b-1", Dataset: "sample", Models: []string{"gpt:v1"}, Scorer: "contains", Concurrency: 4, Status: "done", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
			Results:         []BenchmarkResult{{Model: "gpt:v1", Queries: 100, Correct: 90, Accuracy: 0.9, P50MS: 10, P95MS: 20, P99MS: 30, CostUSD: 0.01}},
			Recommendations: []Recommendation{{Kind: "best_quality", Model: "gpt:v1", Why: "highest accuracy"}}}),
		PutBenchmark(Benchmark{ID: "b-gone", Dataset: "sample", Status: "failed", StartedAt: t0}),
		DeleteBenchmark("b-gone"),
		PutLLMProvider(LLMProvider{ID: "spare", Kind: "anthropic", BaseURL: "https://api.example", CreatedAt: t0, UpdatedAt: t0}),
		DeleteLLMProvider("spare"),
	}
}

// fixture returns an applier whose state holds fixtureCommands.
func fixture(tb testing.TB) *applier {
	tb.Helper()
	a := newApplier(tb)
	for _, cmd := range fixtureCommands() {
		a.must(cmd)
	}
	return a
}
