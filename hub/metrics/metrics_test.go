package metrics

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
)

// runtimeFixture is what packaging/nodered/runtime served for a runtime
// that ran two "triage" workflows (0.7 s ok, 3 s error), one of a flow
// whose name tries to break out of its label, has one workflow in flight
// and made two LLM calls.
func runtimeFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/runtime.prom")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseUsage(t *testing.T) {
	u, err := ParseUsage(bytes.NewReader(runtimeFixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	tri := u.Flows["triage"]
	if tri == nil || tri.Count != 2 || tri.Errors != 1 || tri.Active != 1 || math.Abs(tri.Sum-3.7) > 1e-9 {
		t.Fatalf("triage = %+v", tri)
	}
	// 0.7 s lands in le=1 and above, 3 s in le=5 and above.
	want := []float64{0, 0, 1, 1, 2, 2, 2, 2, 2}
	for i, w := range want {
		if tri.Buckets[i] != w {
			t.Fatalf("triage buckets = %v, want %v", tri.Buckets, want)
		}
	}
	evil := u.Flows[`evil"} x{ \`]
	if evil == nil || evil.Count != 1 {
		t.Fatalf("the injected flow name was not kept as one escaped value: %v", keys(u.Flows))
	}
	g := u.Models["gpt-4o-2024-08-06"]
	if g == nil || g.PromptTokens != 1000 || g.CompletionTokens != 500 || g.Requests != 1 || math.Abs(g.CostUSD-0.0075) > 1e-12 {
		t.Fatalf("gpt-4o = %+v", g)
	}
	if l := u.Models["llama3"]; l == nil || l.PromptTokens != 200 || l.CostUSD != 0 {
		t.Fatalf("llama3 = %+v", l)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestParseUsageRefusesGarbage(t *testing.T) {
	for name, body := range map[string]string{
		"not exposition": "{\"json\": true}\n",
		"bad value":      "agent_workflow_errors_total{flow=\"a\"} abc\n",
		"too big":        "# " + strings.Repeat("x", MaxRuntimeBody) + "\n",
	} {
		if _, err := ParseUsage(strings.NewReader(body)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	u, err := ParseUsage(strings.NewReader("agent_workflow_errors_total{flow=\"a\"} NaN\nagent_llm_requests_total{model=\"m\"} -5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Flows["a"].Errors != 0 || u.Models["m"].Requests != 0 {
		t.Fatalf("NaN or negative counters kept: %+v %+v", u.Flows["a"], u.Models["m"])
	}
}

// TestParseUsageBoundsLabels: a runtime reporting 200 flows and 100 models
// with long, control-laden names yields at most the caps, the rest summed
// under _other, every value sanitized.
func TestParseUsageBoundsLabels(t *testing.T) {
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "agent_workflow_errors_total{flow=\"flow-%03d\\n%s\"} 1\n", i, strings.Repeat("é", 100))
	}
	for i := range 100 {
		fmt.Fprintf(&b, "agent_llm_requests_total{model=\"model-%03d\"} 2\n", i)
	}
	u, err := ParseUsage(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Flows) != MaxFlowsPerRuntime+1 || len(u.Models) != MaxModelsPerRuntime+1 {
		t.Fatalf("%d flows and %d models kept, want %d and %d", len(u.Flows), len(u.Models), MaxFlowsPerRuntime+1, MaxModelsPerRuntime+1)
	}
	if o := u.Flows[OtherLabel]; o == nil || o.Errors != 200-MaxFlowsPerRuntime {
		t.Fatalf("_other flow = %+v", o)
	}
	if o := u.Models[OtherLabel]; o == nil || o.Requests != 2*(100-MaxModelsPerRuntime) {
		t.Fatalf("_other model = %+v", o)
	}
	for name := range u.Flows {
		if len(name) > MaxLabelValueBytes || strings.ContainsAny(name, "\n\r") {
			t.Fatalf("flow label %q not sanitized", name)
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"triage":                 "triage",
		"  a\nb\tc  ":            "a b c",
		"":                       OtherLabel,
		"\x00\x01":               OtherLabel,
		"bad\xffutf8":            "bad\uFFFDutf8",
		strings.Repeat("x", 100): strings.Repeat("x", MaxLabelValueBytes-3) + "…",
	} {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	long := Sanitize(strings.Repeat("é", 100))
	if len(long) > MaxLabelValueBytes || !strings.HasSuffix(long, "…") || strings.ContainsRune(long, '\uFFFD') {
		t.Errorf("cut not at a rune boundary: %q", long)
	}
}

func TestRuntimeLabels(t *testing.T) {
	l := RuntimeLabels("abc-123-1a2b3c4d", "triage.1a2b3c4d", 2)
	if l["instance_id"] != "abc-123" || l["name"] != "triage" || l["color"] != "1a2b3c4d" || l["replica"] != "2" {
		t.Fatalf("color row labels = %v", l)
	}
	l = RuntimeLabels("abc-123", "triage", 0)
	if l["instance_id"] != "abc-123" || l["name"] != "triage" || l["color"] != "" {
		t.Fatalf("row labels = %v", l)
	}
}

// scrape serves m's registry and returns the exposition text.
func scrape(t *testing.T, m *Metrics) []byte {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// promtoolCheck runs `promtool check metrics` on an exposition.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	cmd := exec.Command(testenv.Promtool(t), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestHubMetricsPassPromtool fills every collector, runtime metrics with
// hostile flow and model names included, and checks the hub's /metrics
// with promtool (Prometheus's own linter) and by parsing it back.
func TestHubMetricsPassPromtool(t *testing.T) {
	m := New("v1.2.3", "eu-west")
	l := RuntimeLabels("i1", "triage", 0)
	m.InstanceUp.With(l).Set(1)
	m.InstanceCPU.With(l).Set(12.5)
	m.InstanceMemory.With(l).Set(1 << 20)
	m.InstanceRestarts.With(l).Inc()
	m.InstanceCrashLoop.With(l).Set(0)
	m.ComponentUp.WithLabelValues("store").Set(1)
	m.HTTPRequests.WithLabelValues("GET", "/api/health", "200").Inc()
	m.HTTPDuration.WithLabelValues("GET", "/api/health").Observe(0.01)
	m.AlertsFiring.WithLabelValues("critical").Set(1)
	m.AlertNotifications.WithLabelValues("webhook", "sent").Inc()
	m.AlertEvaluationTime.Observe(0.001)
	start := time.Now().Add(-time.Minute)
	dep := catalog.Deployment{ID: "d1", InstanceID: "i1", Strategy: "blue-green", Status: catalog.DeploymentSucceeded,
		StartedAt: start, FinishedAt: start.Add(42 * time.Second)}
	m.Deploy.PhaseDone(dep, catalog.PhaseDrain, 2*time.Second)
	m.Deploy.Finish(dep)
	m.Deploy.MessagesHeld(3)
	m.Deploy.MessagesReplayed(3)
	u, err := ParseUsage(bytes.NewReader(runtimeFixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	m.Runtimes.Observe("alloc-1", l, u, time.Now())
	out := scrape(t, m)
	promtoolCheck(t, out)
	for _, want := range []string{
		`nodered_instance_up{instance_id="i1",name="triage",replica="0"} 1`,
		`nodered_instance_cpu_usage{instance_id="i1",name="triage",replica="0"} 12.5`,
		`nodered_instance_restarts_total{instance_id="i1",name="triage",replica="0"} 1`,
		`controltower_deployment_duration_seconds_count{outcome="succeeded",strategy="blue-green"} 1`,
		`controltower_deployment_success_total{strategy="blue-green"} 1`,
		`controltower_deployment_failure_total{outcome="rolled_back",strategy="blue-green"} 0`,
		`controltower_deployment_held_messages_total 3`,
		`agent_workflow_duration_seconds_count{instance_id="i1",name="triage",replica="0",flow="triage"} 2`,
		`agent_llm_tokens_used_total{instance_id="i1",name="triage",replica="0",model="gpt-4o-2024-08-06",type="prompt"} 1000`,
		`flow="evil\"} x{ \\"`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, err := ParseUsage(bytes.NewReader(out)); err != nil {
		t.Fatalf("the hub's own exposition does not parse back: %v", err)
	}
	m.ForgetAllocation("i1", "triage", 0, "alloc-1")
	out = scrape(t, m)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `instance_id="i1"`) && (strings.HasPrefix(line, "nodered_") || strings.HasPrefix(line, "agent_")) {
			t.Errorf("series of a forgotten allocation remains: %s", line)
		}
	}
}

func TestDeployMetricsKeepRecentDeployments(t *testing.T) {
	m := New("t", "r")
	for i := range RecentDeployments + 5 {
		m.Deploy.Finish(catalog.Deployment{ID: fmt.Sprint("d", i), InstanceID: "i", Status: catalog.DeploymentRolledBack,
			StartedAt: time.Now().Add(-time.Second), FinishedAt: time.Now()})
	}
	if n := testutil.CollectAndCount(m.Deploy.Finished); n != RecentDeployments {
		t.Fatalf("%d finished-deployment series, want %d", n, RecentDeployments)
	}
	if v := testutil.ToFloat64(m.Deploy.Failure.WithLabelValues("blue-green", "rolled_back")); v != float64(RecentDeployments+5) {
		t.Fatalf("failure_total = %v", v)
	}
}

func TestPriceTable(t *testing.T) {
	pt := DefaultPrices()
	if err := pt.Validate(); err != nil {
		t.Fatal(err)
	}
	if p, ok := pt.Lookup("gpt-4o-mini-2024-07-18"); !ok || p.Model != "gpt-4o-mini" {
		t.Fatalf("gpt-4o-mini-2024-07-18 priced as %+v %v", p, ok)
	}
	if p, ok := pt.Lookup("gpt-4o-2024-08-06"); !ok || p.Model != "gpt-4o" {
		t.Fatalf("gpt-4o-2024-08-06 priced as %+v", p)
	}
	if _, ok := pt.Lookup("gpt-4omega"); ok {
		t.Fatal("a prefix without a separator matched")
	}
	if c := pt.Cost("gpt-4o", 1e6, 1e6); c != 12.5 {
		t.Fatalf("cost = %v", c)
	}
	for name, bad := range map[string]PriceTable{
		"prices[0].prompt_per_million": {Currency: "USD", Prices: []Price{{"a", -1, 0}}},
		"prices[1].model":              {Currency: "USD", Prices: []Price{{"a", 1, 1}, {"a", 1, 1}}},
		"currency":                     {Currency: "EUR", Prices: []Price{{"a", 1, 1}}},
		"prices[0].model ":             {Currency: "USD", Prices: []Price{{"a\nb", 1, 1}}},
	} {
		err := bad.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

// TestRuntimeExposition: what a Prometheus scraping a runtime through the
// hub gets is the runtime's agent_* and process metrics, bounded, and
// passes promtool.
func TestRuntimeExposition(t *testing.T) {
	body := append(runtimeFixture(t), []byte("something_else{x=\"y\"} 1\n")...)
	out, err := RuntimeExposition(body)
	if err != nil {
		t.Fatal(err)
	}
	promtoolCheck(t, out)
	for _, want := range []string{`agent_workflow_duration_seconds_count{flow="triage"} 2`, "\nprocess_resident_memory_bytes 4",
		`agent_llm_cost_usd_total{model="gpt-4o-2024-08-06"} 0.0075`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("lacks %s:\n%s", want, out)
		}
	}
	if bytes.Contains(out, []byte("something_else")) {
		t.Error("an unknown family was passed on")
	}
}
