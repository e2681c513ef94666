package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/secrets"
	"github.com/redforge/controltower/internal/testenv"
)

// localApplier applies commands to one catalog, in order: the part of a
// Raft node the engine uses, without the network (hub tests run the real
// thing).
type localApplier struct {
	mu    sync.Mutex
	s     *catalog.State
	index uint64
}

func (a *localApplier) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.index++
	return a.s.Apply(a.index, cmd)
}

// scripted is a Source whose values the test sets.
type scripted struct {
	mu     sync.Mutex
	series map[string][]Series
}

func (s *scripted) set(metric string, ss ...Series) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.series == nil {
		s.series = map[string][]Series{}
	}
	s.series[metric] = ss
}

func (s *scripted) Series(_ context.Context, metric string) ([]Series, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.series[metric], nil
}

// hookServer counts the Alertmanager-format webhook posts by status.
type hookServer struct {
	srv              *httptest.Server
	firing, resolved atomic.Int32
	hang             chan struct{} // while open, /slow hangs
}

func newHook(t *testing.T) *hookServer {
	h := &hookServer{hang: make(chan struct{})}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-h.hang:
			case <-r.Context().Done():
				return
			}
		}
		var m webhookMessage
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil || m.Version != "4" || len(m.Alerts) != 1 {
			http.Error(w, "not an Alertmanager webhook message", 400)
			return
		}
		if r.URL.Path == "/hook" {
			if m.Status == StateFiring {
				h.firing.Add(1)
			} else {
				h.resolved.Add(1)
			}
		}
	}))
	t.Cleanup(func() {
		select {
		case <-h.hang:
		default:
			close(h.hang)
		}
		h.srv.Close()
	})
	return h
}

func newEngine(st *catalog.State, ap *localApplier, src Source, leader *atomic.Bool) *Engine {
	return New(Config{SendTimeout: 2 * time.Second, RetryBase: 50 * time.Millisecond}, Deps{Catalog: st, Applier: ap,
		IsLeader: leader.Load, Source: src})
}

func putRule(t *testing.T, ap *localApplier, name, url string) {
	t.Helper()
	in := RuleInput{Name: &name, Metric: ptr("nodered_instance_up"), Condition: ptr("<"), Threshold: ptr(1.0),
		Severity: ptr("critical"), Channels: &[]catalog.AlertChannel{{Type: "webhook", URL: url}}}
	r := catalog.AlertRule{ID: name}
	if err := in.Apply(&r, true); err != nil {
		t.Fatal(err)
	}
	if _, err := ap.Apply(context.Background(), catalog.PutAlertRule(r)); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestFiresOnceAcrossLeaderChange: a series fires once and resolves once
// although leadership moves to another hub's engine (with no memory of it)
// between the two.
func TestFiresOnceAcrossLeaderChange(t *testing.T) {
	st := catalog.NewState()
	ap := &localApplier{s: st}
	hook := newHook(t)
	putRule(t, ap, "down", hook.srv.URL+"/hook")
	src := &scripted{}
	down := Series{Labels: map[string]string{"instance_id": "i-1", "name": "orders", "replica": "0"}, Value: 0}
	src.set("nodered_instance_up", down)
	var aLeads, bLeads atomic.Bool
	a, b := newEngine(st, ap, src, &aLeads), newEngine(st, ap, src, &bLeads)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.deliveryLoop(ctx)
	go b.deliveryLoop(ctx)

	aLeads.Store(true)
	a.Evaluate(ctx)
	a.Evaluate(ctx)
	testenv.WaitFor(t, 5*time.Second, "the firing notification", func() error {
		if n := hook.firing.Load(); n != 1 {
			return fmt.Errorf("%d firing posts", n)
		}
		return nil
	})
	aLeads.Store(false)
	a.Evaluate(ctx) // a steps down
	bLeads.Store(true)
	b.Evaluate(ctx)
	b.Evaluate(ctx)
	if n := len(st.FiringAlerts()); n != 1 {
		t.Fatalf("%d alerts firing after the leader changed, want the one", n)
	}
	src.set("nodered_instance_up", Series{Labels: down.Labels, Value: 1})
	b.Evaluate(ctx)
	b.Evaluate(ctx)
	testenv.WaitFor(t, 5*time.Second, "the resolved notification", func() error {
		if n := hook.resolved.Load(); n != 1 {
			return fmt.Errorf("%d resolved posts", n)
		}
		return nil
	})
	if f := hook.firing.Load(); f != 1 {
		t.Fatalf("%d firing posts, want 1", f)
	}
	if all := st.Alerts(); len(all) != 1 || all[0].State != StateResolved {
		t.Fatalf("alerts = %+v", all)
	}
}

// TestSlowChannelDoesNotHoldEvaluation: while one rule's webhook hangs,
// another rule fires and is delivered, and the hanging delivery is retried
// and shown as such.
func TestSlowChannelDoesNotHoldEvaluation(t *testing.T) {
	st := catalog.NewState()
	ap := &localApplier{s: st}
	hook := newHook(t)
	putRule(t, ap, "slow", hook.srv.URL+"/slow")
	src := &scripted{}
	leader := &atomic.Bool{}
	leader.Store(true)
	e := newEngine(st, ap, src, leader)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.deliveryLoop(ctx)
	src.set("nodered_instance_up", Series{Labels: map[string]string{"name": "a"}, Value: 0})
	e.Evaluate(ctx)
	putRule(t, ap, "fast", hook.srv.URL+"/hook")
	start := time.Now()
	e.Evaluate(ctx)
	testenv.WaitFor(t, 5*time.Second, "the fast rule's notification", func() error {
		if hook.firing.Load() != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("the fast notification took %v behind a hanging channel", d)
	}
	testenv.WaitFor(t, 10*time.Second, "the slow delivery shown retrying", func() error {
		for _, a := range st.Alerts() {
			if a.RuleName == "slow" && len(a.Deliveries) == 1 && a.Deliveries[0].Status == "retrying" &&
				strings.Contains(a.Deliveries[0].LastError, "deadline") {
				return nil
			}
		}
		return fmt.Errorf("alerts: %+v", st.Alerts())
	})
	close(hook.hang)
	testenv.WaitFor(t, 10*time.Second, "the slow delivery sent once the channel answers", func() error {
		for _, a := range st.Alerts() {
			if a.RuleName == "slow" && a.Deliveries[0].Status == "sent" {
				return nil
			}
		}
		return fmt.Errorf("not sent")
	})
}

// TestRuleInputRefusals: each bad field is named.
func TestRuleInputRefusals(t *testing.T) {
	good := func() RuleInput {
		return RuleInput{Name: ptr("x"), Metric: ptr("nodered_instance_up"), Condition: ptr("<"), Threshold: ptr(1.0),
			Severity: ptr("critical"), Channels: &[]catalog.AlertChannel{{Type: "webhook", URL: "http://h/x"}}}
	}
	cases := map[string]func(*RuleInput){
		"name":             func(in *RuleInput) { in.Name = ptr("a\nb") },
		"metric":           func(in *RuleInput) { in.Metric = ptr("up") },
		"condition":        func(in *RuleInput) { in.Condition = ptr("=") },
		"for":              func(in *RuleInput) { in.For = ptr("48h") },
		"severity":         func(in *RuleInput) { in.Severity = ptr("sev1") },
		"channels":         func(in *RuleInput) { in.Channels = &[]catalog.AlertChannel{} },
		"channels[0].type": func(in *RuleInput) { (*in.Channels)[0].Type = "pager" },
		"channels[0].url":  func(in *RuleInput) { (*in.Channels)[0].URL = "http://user:pw@h/x" },
		"channels[0].to":   func(in *RuleInput) { *in.Channels = []catalog.AlertChannel{{Type: "email"}} },
		"channels[0].to[1]": func(in *RuleInput) {
			*in.Channels = []catalog.AlertChannel{{Type: "email", To: []string{"a@b.c", "A <a@b.c>"}}}
		},
		"match.zone": func(in *RuleInput) { in.Match = map[string]string{"zone": "x"} },
	}
	for field, mutate := range cases {
		in := good()
		mutate(&in)
		err := in.Apply(&catalog.AlertRule{}, true)
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	if err := good().Apply(&catalog.AlertRule{}, true); err != nil {
		t.Fatal(err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/XYZ": "https://hooks.slack.com/services/…",
		"http://am:9093":               "http://am:9093",
		"http://am:9093/api/v2/alerts": "http://am:9093/api/…",
		"https://user:pw@h/x":          "https://h/x/…",
		"https://h/x?token=abc":        "https://h/x/…",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestChannelURLsSealed: a channel URL (a webhook's own credential) is
// sealed in the catalog, shown redacted, and still delivered to.
func TestChannelURLsSealed(t *testing.T) {
	st := catalog.NewState()
	ap := &localApplier{s: st}
	hook := newHook(t)
	seal, err := secrets.FromClusterSecret("alert-test-cluster-secret")
	if err != nil {
		t.Fatal(err)
	}
	svc := &Service{Catalog: st, Applier: ap, Sealer: seal}
	url := hook.srv.URL + "/hook?token=s3cr3t-webhook-token"
	shown, err := svc.CreateRule(context.Background(), "admin", RuleInput{Name: ptr("sealed"), Metric: ptr("nodered_instance_up"),
		Condition: ptr("<"), Threshold: ptr(1.0), Severity: ptr("critical"), Channels: &[]catalog.AlertChannel{{Type: "webhook", URL: url}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(shown.Channels[0].URL, "s3cr3t") || !strings.HasPrefix(shown.Channels[0].URL, "http://127.0.0.1") {
		t.Fatalf("the API shows %q", shown.Channels[0].URL)
	}
	for _, r := range st.AlertRules() {
		if !secrets.IsSealed(r.Channels[0].URL) {
			t.Fatalf("the catalog holds the channel URL in clear: %q", r.Channels[0].URL)
		}
	}
	src := &scripted{}
	leader := &atomic.Bool{}
	leader.Store(true)
	e := New(Config{SendTimeout: 2 * time.Second, RetryBase: 50 * time.Millisecond}, Deps{Catalog: st, Applier: ap,
		IsLeader: leader.Load, Source: src, Sealer: seal})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.deliveryLoop(ctx)
	src.set("nodered_instance_up", Series{Labels: map[string]string{"name": "a"}, Value: 0})
	e.Evaluate(ctx)
	testenv.WaitFor(t, 10*time.Second, "the notification at the sealed URL", func() error {
		if hook.firing.Load() != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
