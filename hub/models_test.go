package hub_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/llmtest"
	"github.com/redforge/controltower/internal/testenv"
)

// syncBuffer is a log sink safe for the hub's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// modelsSetup registers two providers (a local Ollama and a cloud OpenAI
// with a key) and two models on h.
func modelsSetup(t *testing.T, h *hubtest.Hub, cloudKey string) (local, cloud *llmtest.Server) {
	t.Helper()
	local = llmtest.Start(t, llmtest.Ollama)
	cloud = llmtest.Start(t, llmtest.OpenAI, llmtest.WithKey(cloudKey))
	h.JSON(t, "PUT", "/api/models/providers/local", map[string]any{"kind": "ollama", "base_url": local.URL}, 200, nil)
	h.JSON(t, "PUT", "/api/models/providers/cloud", map[string]any{"kind": "openai", "base_url": cloud.URL, "api_key": cloudKey}, 200, nil)
	h.JSON(t, "POST", "/api/models", map[string]any{"name": "llama3.2", "version": "v1", "provider": "local", "upstream": "llama3.2:3b",
		"input_price": 0, "output_price": 0, "context_length": 8192}, 201, nil)
	h.JSON(t, "POST", "/api/models", map[string]any{"name": "gpt", "version": "v1", "provider": "cloud", "upstream": "gpt-4o-mini",
		"input_price": 0.15, "output_price": 0.6}, 201, nil)
	return local, cloud
}

// instanceToken makes an instance and its instance-scoped token.
func instanceToken(t testing.TB, h *hubtest.Hub, name string) (id, token string) {
	t.Helper()
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": name, "desired_state": "stopped"}, 201, &inst)
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": name + "-llm", "role": "VIEWER", "scope": "instance", "instance_id": inst.ID}, 201, &tok)
	return inst.ID, tok.Token
}

// TestModelsRegistryAndGateway: the registry through the API (providers
// with write-only keys, versions side by side, rollback in one call,
// routes), then the OpenAI SDK calling the gateway with an instance
// token: routed, logged in the AI-decision log with tokens and cost,
// counted in /metrics, summed per workflow.
func TestModelsRegistryAndGateway(t *testing.T) {
	h := hubtest.Start(t)
	const key = "sk-cloud-secret-abcdef0123456789"
	modelsSetup(t, h, key)

	var prov struct {
		Providers []map[string]any `json:"providers"`
	}
	h.JSON(t, "GET", "/api/models/providers", nil, 200, &prov)
	if len(prov.Providers) != 2 || prov.Providers[0]["has_api_key"] != true || prov.Providers[1]["has_api_key"] != false {
		t.Fatalf("providers = %+v", prov.Providers)
	}

	// Versions side by side; the new current one remembers the old.
	h.JSON(t, "POST", "/api/models", map[string]any{"name": "llama3.2", "version": "v2", "provider": "local", "upstream": "llama3.2:3b-q8", "current": true}, 201, nil)
	var got struct {
		ID       string   `json:"id"`
		Versions []string `json:"versions"`
		Previous string   `json:"previous"`
	}
	h.JSON(t, "GET", "/api/models/llama3.2", nil, 200, &got)
	if got.ID != "llama3.2:v2" || got.Previous != "llama3.2:v1" || len(got.Versions) != 2 {
		t.Fatalf("llama3.2 = %+v", got)
	}
	var rb struct{ From, To string }
	h.JSON(t, "POST", "/api/models/llama3.2/rollback", nil, 200, &rb)
	if rb.From != "llama3.2:v2" || rb.To != "llama3.2:v1" {
		t.Fatalf("rollback = %+v", rb)
	}
	h.JSON(t, "GET", "/api/models/llama3.2", nil, 200, &got)
	if got.ID != "llama3.2:v1" {
		t.Fatalf("after rollback the current version is %s", got.ID)
	}

	h.JSON(t, "PUT", "/api/routes/llm/default", map[string]any{"policy": "cheapest_sla", "candidates": []string{"gpt", "llama3.2"}, "max_p95_ms": 2000}, 200, nil)
	h.JSON(t, "PUT", "/api/routes/llm/pinned", map[string]any{"policy": "fixed", "candidates": []string{"llama3.2:v2", "gpt:v1"}}, 200, nil)

	instID, token := instanceToken(t, h, "caller")
	c := openai.NewClient(option.WithBaseURL(h.URL+"/v1/"), option.WithAPIKey(token), option.WithMaxRetries(0),
		option.WithHeader("X-Redforge-Flow", "triage"))
	ctx := context.Background()
	for _, m := range []string{"default", "pinned", "gpt"} {
		res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: m,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello gateway")}})
		if err != nil {
			t.Fatalf("chat via %s: %v", m, err)
		}
		want := map[string]string{"default": "llama3.2:v1", "pinned": "llama3.2:v2", "gpt": "gpt:v1"}[m]
		if res.Model != want || !strings.Contains(res.Choices[0].Message.Content, "Hello gateway") || res.Usage.TotalTokens == 0 {
			t.Fatalf("via %s: model %s, %+v", m, res.Model, res)
		}
	}
	// A stream through the SDK.
	st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream me please")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil || !strings.Contains(acc.Choices[0].Message.Content, "stream me please") || acc.Usage.CompletionTokens == 0 {
		t.Fatalf("stream: %v %+v", err, acc)
	}
	// Embeddings and the model list.
	h.JSON(t, "POST", "/api/models", map[string]any{"name": "embed", "version": "v1", "provider": "local", "upstream": "nomic-embed-text", "kind": "embedding"}, 201, nil)
	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}}})
	if err != nil || len(emb.Data) != 2 || len(emb.Data[0].Embedding) != llmtest.Dim {
		t.Fatalf("embeddings: %v %+v", err, emb)
	}
	list, err := c.Models.List(ctx)
	if err != nil || len(list.Data) < 5 {
		t.Fatalf("models: %v %+v", err, list)
	}

	// Every call is in the AI-decision log with instance, flow, tokens
	// and cost.
	testenv.WaitFor(t, 10*time.Second, "decisions logged", func() error {
		var ds struct {
			Decisions []struct {
				InstanceID string          `json:"instance_id"`
				FlowName   string          `json:"flow_name"`
				Model      string          `json:"model"`
				TokensUsed int64           `json:"tokens_used"`
				Metadata   json.RawMessage `json:"metadata"`
			} `json:"decisions"`
		}
		h.JSON(t, "GET", "/api/audit/ai_decisions?instance_id="+instID, nil, 200, &ds)
		if len(ds.Decisions) != 5 {
			return fmt.Errorf("%d decisions", len(ds.Decisions))
		}
		for _, d := range ds.Decisions {
			var m struct {
				CostUSD float64 `json:"cost_usd"`
				Why     string  `json:"why"`
			}
			_ = json.Unmarshal(d.Metadata, &m)
			if d.FlowName != "triage" || d.TokensUsed == 0 || m.Why == "" || (d.Model == "gpt:v1" && m.CostUSD <= 0) {
				return fmt.Errorf("decision %+v", d)
			}
		}
		return nil
	})
	var usage struct {
		Usage []struct {
			Flow, Model string
			Calls       int
			CostUSD     float64 `json:"cost_usd"`
		} `json:"usage"`
		Total float64 `json:"total_cost_usd"`
	}
	h.JSON(t, "GET", "/api/models/usage", nil, 200, &usage)
	if len(usage.Usage) != 4 || usage.Total <= 0 {
		t.Fatalf("usage = %+v", usage)
	}

	// /metrics parses and counts the gateway's tokens by model.
	code, body := h.Do(t, "GET", "/metrics", "", nil)
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	tokens := fams["agent_llm_tokens_used_total"]
	if tokens == nil {
		t.Fatal("no agent_llm_tokens_used_total")
	}
	var gptTokens float64
	for _, m := range tokens.Metric {
		for _, l := range m.Label {
			if l.GetName() == "model" && l.GetValue() == "gpt:v1" {
				gptTokens += m.GetCounter().GetValue()
			}
		}
	}
	if gptTokens == 0 || fams["agent_llm_cost_usd_total"] == nil {
		t.Fatalf("gpt:v1 tokens %v in /metrics", gptTokens)
	}
}

// TestModelsSecurity: a runtime's token cannot read providers or the
// registry's admin routes; a VIEWER sees no keys; the key is nowhere in
// clear (API answers, logs, audit log and export, the decision log, the
// catalog snapshot, the data dir); oversized bodies and prompts are
// refused; bad input gets a 4xx naming the field.
func TestModelsSecurity(t *testing.T) {
	logs := &syncBuffer{}
	h := hubtest.StartLogged(t, logs)
	const key = "sk-very-secret-key-9f8e7d6c5b4a"
	_, cloud := modelsSetup(t, h, key)
	_, token := instanceToken(t, h, "runtime")
	viewer := h.CreateUser(t, "viewer", "VIEWER")

	for _, r := range []struct{ method, path string }{
		{"GET", "/api/models/providers"}, {"GET", "/api/models"}, {"PUT", "/api/models/providers/cloud"},
		{"POST", "/api/models"}, {"GET", "/api/routes/llm"}, {"POST", "/api/models/benchmarks"}, {"GET", "/api/models/usage"},
	} {
		if code, body := h.Do(t, r.method, r.path, token, map[string]any{}); code != http.StatusForbidden {
			t.Errorf("%s %s with the instance token = %d %s, want 403", r.method, r.path, code, body)
		}
	}
	code, body := h.Do(t, "GET", "/api/models/providers", viewer, nil)
	if code != 200 || strings.Contains(string(body), key) || strings.Contains(string(body), "rfs1:") || strings.Contains(string(body), `"api_key"`) {
		t.Fatalf("viewer providers = %d %s", code, body)
	}
	if code, _ := h.Do(t, "PUT", "/api/models/providers/cloud", viewer, map[string]any{"kind": "openai", "base_url": cloud.URL}); code != 403 {
		t.Fatalf("viewer PUT provider = %d", code)
	}

	// The gateway works with the key (so it was stored and opened) …
	chat := func(tok string, body any) (int, []byte) {
		return h.Do(t, "POST", "/v1/chat/completions", tok, body)
	}
	if code, body := chat(token, map[string]any{"model": "gpt", "messages": []map[string]any{{"role": "user", "content": "hi"}}}); code != 200 {
		t.Fatalf("chat = %d %s", code, body)
	}
	// … and a wrong key, echoed by the upstream, is scrubbed.
	h.JSON(t, "PUT", "/api/models/providers/cloud", map[string]any{"kind": "openai", "base_url": cloud.URL, "api_key": key + "-wrong"}, 200, nil)
	code, body = chat(token, map[string]any{"model": "gpt", "messages": []map[string]any{{"role": "user", "content": "hi"}}})
	if code != http.StatusBadGateway || strings.Contains(string(body), key) || !strings.Contains(string(body), "REDACTED") {
		t.Fatalf("chat with a wrong key = %d %s", code, body)
	}

	// Bad input: 4xx naming the field, never a 500.
	big := strings.Repeat("x", 1<<20+10)
	for _, tc := range []struct {
		body  any
		code  int
		field string
	}{
		{[]byte(strings.Repeat(" ", 5<<20)), 413, ""},
		{map[string]any{"model": "gpt", "messages": []map[string]any{{"role": "user", "content": big}}}, 413, "messages"},
		{map[string]any{"model": "gpt"}, 400, "messages"},
		{map[string]any{"model": "gpt", "messages": []map[string]any{{"role": "tool", "content": "x"}}}, 400, "messages[0].role"},
		{map[string]any{"model": "gpt", "messages": []map[string]any{{"role": "user", "content": "x"}}, "max_tokens": -1}, 400, "max_tokens"},
		{map[string]any{"model": "gpt", "messages": []map[string]any{{"role": "user", "content": "x"}}, "n": 3}, 400, "n"},
		{map[string]any{"model": "nope", "messages": []map[string]any{{"role": "user", "content": "x"}}}, 404, "model"},
		{map[string]any{"model": "llama3.2", "messages": []map[string]any{{"role": "user", "content": strings.Repeat("word ", 9000)}}}, 400, "messages"},
	} {
		code, body := chat(token, tc.body)
		if code != tc.code || (tc.field != "" && !strings.Contains(string(body), `"field":"`+tc.field+`"`)) {
			t.Errorf("chat %.80v = %d %s, want %d naming %q", tc.body, code, clip(body), tc.code, tc.field)
		}
	}
	for _, tc := range []struct {
		method, path string
		body         any
		field        string
	}{
		{"PUT", "/api/models/providers/x", map[string]any{"kind": "bard", "base_url": "http://x"}, "kind"},
		{"PUT", "/api/models/providers/x", map[string]any{"kind": "openai", "base_url": "ftp://x"}, "base_url"},
		{"PUT", "/api/models/providers/Bad%20Id", map[string]any{"kind": "openai", "base_url": "http://x"}, "id"},
		{"POST", "/api/models", map[string]any{"name": "m", "version": "v1", "provider": "nope", "upstream": "u"}, "provider"},
		{"POST", "/api/models", map[string]any{"name": "providers", "version": "v1", "provider": "local", "upstream": "u"}, "name"},
		{"POST", "/api/models", map[string]any{"name": "m", "version": "v1", "provider": "local", "upstream": "u", "input_price": -1}, "input_price"},
		{"PUT", "/api/routes/llm/r", map[string]any{"policy": "random", "candidates": []string{"gpt"}}, "policy"},
		{"PUT", "/api/routes/llm/r", map[string]any{"policy": "fixed", "candidates": []string{"gpt", "ghost"}}, "candidates[1]"},
		{"PUT", "/api/routes/llm/r", map[string]any{"policy": "sla", "candidates": []string{"gpt"}}, "max_p95_ms"},
		{"PUT", "/api/models/budgets/instance:ghost", map[string]any{"daily_usd": 1, "action": "refuse"}, "id"},
		{"POST", "/api/models/benchmarks", map[string]any{"models": []string{"gpt"}, "scorer": "vibes"}, "scorer"},
		{"POST", "/api/models/benchmarks", map[string]any{"models": []string{}}, "models"},
	} {
		code, body := h.Do(t, tc.method, tc.path, h.AdminToken, tc.body)
		if code != 400 || !strings.Contains(string(body), `"field":"`+tc.field+`"`) {
			t.Errorf("%s %s = %d %s, want 400 naming %q", tc.method, tc.path, code, clip(body), tc.field)
		}
	}

	// The key is nowhere in clear.
	_, exported := h.Do(t, "GET", "/api/audit/export?format=json", h.AdminToken, nil)
	_, decisions := h.Do(t, "GET", "/api/audit/ai_decisions?limit=1000", h.AdminToken, nil)
	var snap bytes.Buffer
	if err := h.State.Snapshot().Persist(&snap); err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"the hub log": logs.String(), "the audit export": string(exported),
		"the decision log": string(decisions), "the catalog snapshot (uncompressed)": gunzipSnapshot(t, snap.Bytes())} {
		if strings.Contains(text, key) {
			t.Errorf("the provider key is in %s", what)
		}
	}
	if !strings.Contains(string(exported), "MODEL_PROVIDER_SET") {
		t.Errorf("the audit export lacks MODEL_PROVIDER_SET")
	}
	// Nor in any file of the data dir (Raft log, snapshots, store).
	err := filepath.WalkDir(h.Config.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(key)) {
			return fmt.Errorf("%s holds the key in clear", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// gunzipSnapshot returns a catalog snapshot's JSON lines.
func gunzipSnapshot(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b[10:]))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// askFlow answers GET /ask?q=… by calling the hub's LLM gateway from a
// function node and an http request node, with the runtime's own
// REDFORGE_HUB_URL and REDFORGE_TOKEN: no provider key in the flow.
const askFlow = `[
 {"id":"tab1","type":"tab","label":"ask"},
 {"id":"in1","type":"http in","z":"tab1","url":"/ask","method":"get","wires":[["fn1"]]},
 {"id":"fn1","type":"function","z":"tab1","outputs":1,"wires":[["req1"]],
  "func":"const q = msg.req.query.q || 'hello';\nmsg.url = env.get('REDFORGE_HUB_URL') + '/v1/chat/completions';\nmsg.method = 'POST';\nmsg.headers = {'Authorization': 'Bearer ' + env.get('REDFORGE_TOKEN'), 'Content-Type': 'application/json', 'X-Redforge-Flow': 'ask-flow', 'X-Redforge-Priority': 'normal'};\nmsg.payload = {model: 'default', messages: [{role: 'user', content: q}]};\nreturn msg;"},
 {"id":"req1","type":"http request","z":"tab1","method":"use","ret":"obj","url":"","wires":[["fn2"]]},
 {"id":"fn2","type":"function","z":"tab1","outputs":1,"wires":[["out1"]],
  "func":"const p = msg.payload || {};\nmsg.headers = {};\nmsg.payload = {status: msg.statusCode, model: p.model, answer: p.choices ? p.choices[0].message.content : p, tokens: p.usage ? p.usage.total_tokens : 0};\nreturn msg;"},
 {"id":"out1","type":"http response","z":"tab1","statusCode":"200","wires":[]}
]`

// TestNodeREDFlowCallsGateway: a real Node-RED flow calls the gateway
// with its instance token; the call is routed, logged in the AI-decision
// log with tokens and cost, and counted in the metrics.
func TestNodeREDFlowCallsGateway(t *testing.T) {
	h := hubtest.Start(t)
	modelsSetup(t, h, "sk-flow-test-key-0000")
	h.JSON(t, "PUT", "/api/routes/llm/default", map[string]any{"policy": "fixed", "candidates": []string{"gpt", "llama3.2"}}, 200, nil)
	var inst struct {
		ID       string `json:"id"`
		Observed struct {
			Status string `json:"status"`
			Port   int    `json:"port"`
		} `json:"observed"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "agent"}, 201, &inst)
	testenv.WaitFor(t, 120*time.Second, "instance running", func() error {
		h.JSON(t, "GET", "/api/instances/agent", nil, 200, &inst)
		if inst.Observed.Status != "running" || inst.Observed.Port == 0 {
			return fmt.Errorf("status %s", inst.Observed.Status)
		}
		return nil
	})
	h.JSON(t, "PUT", "/api/instances/agent/flows", []byte(askFlow), 200, nil)
	var answer struct {
		Status int    `json:"status"`
		Model  string `json:"model"`
		Answer string `json:"answer"`
		Tokens int64  `json:"tokens"`
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/ask?q=what+is+the+weather", inst.Observed.Port)
	testenv.WaitFor(t, 30*time.Second, "the flow answers through the gateway", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &answer); err != nil || answer.Status != 200 {
			return fmt.Errorf("GET /ask = %d %s", resp.StatusCode, b)
		}
		return nil
	})
	if answer.Model != "gpt:v1" || !strings.Contains(answer.Answer, "what is the weather") || answer.Tokens == 0 {
		t.Fatalf("flow got %+v", answer)
	}
	testenv.WaitFor(t, 10*time.Second, "the flow's call in the decision log", func() error {
		var ds struct {
			Decisions []struct {
				InstanceID string          `json:"instance_id"`
				FlowName   string          `json:"flow_name"`
				Model      string          `json:"model"`
				TokensUsed int64           `json:"tokens_used"`
				Metadata   json.RawMessage `json:"metadata"`
			} `json:"decisions"`
		}
		h.JSON(t, "GET", "/api/audit/ai_decisions?instance_id="+inst.ID, nil, 200, &ds)
		if len(ds.Decisions) == 0 {
			return errors.New("none yet")
		}
		d := ds.Decisions[0]
		var m struct {
			Route   string  `json:"route"`
			CostUSD float64 `json:"cost_usd"`
		}
		_ = json.Unmarshal(d.Metadata, &m)
		if d.FlowName != "ask-flow" || d.Model != "gpt:v1" || d.TokensUsed == 0 || m.Route != "default" || m.CostUSD <= 0 {
			return fmt.Errorf("decision %+v %s", d, d.Metadata)
		}
		return nil
	})
	_, body := h.Do(t, "GET", "/metrics", "", nil)
	if !strings.Contains(string(body), `agent_llm_tokens_used_total{model="gpt:v1",source="gateway",type="completion"}`) {
		t.Fatalf("/metrics lacks the flow's tokens")
	}
}
