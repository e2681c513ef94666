package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// plainFlow is what most users already have: GET /hello → change →
// http response, with no word of the hub's control contract.
func plainFlow(version string) json.RawMessage {
	return json.RawMessage(`[
 {"id":"pf-tab","type":"tab","label":"plain"},
 {"id":"pf-in","type":"http in","z":"pf-tab","url":"/hello","method":"get","wires":[["pf-set"]]},
 {"id":"pf-set","type":"change","z":"pf-tab","rules":[{"t":"set","p":"payload","pt":"msg","to":"{\"version\":\"` + version + `\"}","tot":"json"}],"wires":[["pf-out"]]},
 {"id":"pf-out","type":"http response","z":"pf-tab","statusCode":"","headers":{},"wires":[]}
]`)
}

// httpLoad sends GET /i/{name}/hello at rate per second until finish, and
// records every answer's status and "version".
type httpLoad struct {
	stop     chan struct{}
	done     sync.WaitGroup
	mu       sync.Mutex
	results  []bgReq
	stopOnce sync.Once
}

func startHTTPLoad(tb testing.TB, h *hubtest.Hub, name string, rate int) *httpLoad {
	l := &httpLoad{stop: make(chan struct{})}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	tick := time.Second / time.Duration(rate)
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		tk := time.NewTicker(tick)
		defer tk.Stop()
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			select {
			case <-l.stop:
				return
			case <-tk.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bgReq{start: time.Now()}
				resp, err := client.Get(h.URL + "/i/" + name + "/hello")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					r.status = resp.StatusCode
					var v struct {
						Version string `json:"version"`
					}
					_ = json.Unmarshal(b, &v)
					r.version = v.Version
				}
				r.err, r.latency = err, time.Since(r.start)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
			}()
		}
	}()
	return l
}

// finish stops the load and returns the requests sent and those failed
// (an error or a status other than 200), logging the first failures.
func (l *httpLoad) finish(tb testing.TB) (requests, failed int, versions []string) {
	tb.Helper()
	l.stopOnce.Do(func() { close(l.stop); l.done.Wait() })
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range l.results {
		if r.err != nil || r.status != http.StatusOK {
			failed++
			if failed <= 5 {
				tb.Logf("request at %s failed: %d %v", r.start.Format("15:04:05.000"), r.status, r.err)
			}
		}
		if r.version != "" && !seen[r.version] {
			seen[r.version] = true
			versions = append(versions, r.version)
		}
	}
	return len(l.results), failed, versions
}

// deploymentTotal is a finished deployment's time from its first to its
// last phase record, and the DRAIN phase's.
func deploymentTotal(d bgDeployment) (total, drain time.Duration) {
	if len(d.History) == 0 {
		return 0, 0
	}
	for i, r := range d.History {
		if r.Phase == "DRAIN" && i+1 < len(d.History) {
			drain += d.History[i+1].At.Sub(r.At)
		}
	}
	return d.History[len(d.History)-1].At.Sub(d.History[0].At), drain
}

// TestPlainFlowBlueGreen is issue 15's first finding: a flow that knows
// nothing of the control contract, deployed blue-green under 200
// requests/s with the default drain timeout (5 min), no longer sits in
// DRAIN until the timeout: the runtime plugin answers the drain as soon
// as nothing is in flight. No request fails and the answers switch from
// v1 to v2. Run with the process and the docker driver.
func TestPlainFlowBlueGreen(t *testing.T) {
	for _, driver := range bgDrivers {
		t.Run(driver, func(t *testing.T) { testPlainFlowBlueGreen(t, driver) })
	}
}

func testPlainFlowBlueGreen(t *testing.T, driver string) {
	h := hubtest.Start(t, withDriver(t, driver))
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "plain"}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/plain/flows", plainFlow("v1"), 200, nil)
	testenv.WaitFor(t, time.Minute, "v1 answering through the proxy", func() error {
		code, body, err := get(h.URL + "/i/plain/hello")
		if err != nil || code != 200 || !strings.Contains(body, "v1") {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	load := startHTTPLoad(t, h, "plain", 200)
	time.Sleep(time.Second) // steady state before the deployment
	d := bgDeploy(t, h, map[string]any{"instance": "plain", "flows": plainFlow("v2"), "rollback_window": "0s",
		"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v2"`}}})
	time.Sleep(time.Second)
	requests, failed, versions := load.finish(t)
	if d.Status != "succeeded" {
		t.Fatalf("deployment %s: %s", d.Status, d.Error)
	}
	total, drain := deploymentTotal(d)
	t.Logf("plain flow at 200 req/s: total %s, DRAIN %s; %d requests, %d failed; versions %v", total, drain, requests, failed, versions)
	if !strings.Contains(fmt.Sprint(d.History), "blue acknowledged drain") {
		t.Errorf("a plain flow's runtime did not ack the drain: %+v", d.History)
	}
	// The drain timeout is 5 minutes: a deployment that waited for it
	// would take at least that long.
	if drain >= deploy.DefaultDrainTimeout/2 || total >= deploy.DefaultDrainTimeout/2 {
		t.Errorf("DRAIN took %s and the deployment %s: it waited for the drain timeout (%s)", drain, total, deploy.DefaultDrainTimeout)
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the deployment", failed, requests)
	}
	if len(versions) == 0 || versions[0] != "v1" || versions[len(versions)-1] != "v2" {
		t.Errorf("answers went through versions %v, want v1 then v2", versions)
	}
}

// slowFlow takes input on the hub bus (the instance's relayed input),
// spends 2 s on each message in a function node that knows nothing of the
// contract, and replies {"seq","version"} on redforge/out/{logical}.
func slowFlow(version string) json.RawMessage {
	return json.RawMessage(`[
 {"id":"sl-tab","type":"tab","label":"slow"},
 {"id":"sl-broker","type":"mqtt-broker","name":"hub bus","broker":"redforge-hub","port":"1883","clientid":"","autoConnect":true,"usetls":false,"protocolVersion":"4","keepalive":"60","cleansession":true},
 {"id":"sl-in","type":"mqtt in","z":"sl-tab","topic":"${REDFORGE_INSTANCE}/in/#","qos":"1","datatype":"json","broker":"sl-broker","nl":false,"rap":true,"rh":0,"inputs":0,"wires":[["sl-work"]]},
 {"id":"sl-work","type":"function","z":"sl-tab","func":"await new Promise(r => setTimeout(r, 2000));\nmsg.payload = {seq: msg.payload.seq, version: \"` + version + `\"};\nreturn msg;","outputs":1,"wires":[["sl-out"]]},
 {"id":"sl-out","type":"mqtt out","z":"sl-tab","topic":"redforge/out/${REDFORGE_LOGICAL}","qos":"1","retain":"false","broker":"sl-broker","wires":[]}
]`)
}

// TestPlainFlowSlowFunctionDrain: input on the hub bus processed by a
// function node taking 2 s a message; a blue-green deployment starts
// while messages are in flight in blue. The drain waits for them (the
// plugin counts them through Node-RED's messaging hooks), what arrives
// meanwhile is held and replayed to green, and every message is answered
// exactly once.
func TestPlainFlowSlowFunctionDrain(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "slow"}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/slow/flows", slowFlow("v1"), 200, nil)

	var mu sync.Mutex
	got := map[int]int{}
	versions := map[int]string{}
	unsub, err := h.Bus.Subscribe(context.Background(), deploy.OutputPrefix+"slow", 1, func(_ string, payload []byte) {
		var o struct {
			Seq     int    `json:"seq"`
			Version string `json:"version"`
		}
		if json.Unmarshal(payload, &o) == nil {
			mu.Lock()
			got[o.Seq]++
			versions[o.Seq] = o.Version
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	var seq atomic.Int64
	send := func() {
		n := seq.Add(1)
		b, _ := json.Marshal(map[string]int64{"seq": n})
		if err := h.Bus.Publish(context.Background(), deploy.InputPrefix+"slow/work", b, 1, false); err != nil {
			t.Errorf("publish %d: %v", n, err)
		}
	}
	// The flows run on the bus once a message comes back.
	testenv.WaitFor(t, time.Minute, "v1 answering on the bus", func() error {
		send()
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return fmt.Errorf("no reply yet")
		}
		return nil
	})
	// Warm-up messages sent before the runtime subscribed may be gone:
	// count from here.
	base := int(seq.Load())
	// Messages in flight in blue when the deployment starts, and more
	// while it runs.
	for range 5 {
		send()
	}
	stop := make(chan struct{})
	var senders sync.WaitGroup
	senders.Add(1)
	go func() {
		defer senders.Done()
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				send()
			}
		}
	}()
	d := bgDeploy(t, h, map[string]any{"instance": "slow", "flows": slowFlow("v2"), "rollback_window": "0s"})
	close(stop)
	senders.Wait()
	if d.Status != "succeeded" {
		t.Fatalf("deployment %s: %s", d.Status, d.Error)
	}
	// The drain waited for work in flight: it was acked, after a while.
	var waited time.Duration
	re := regexp.MustCompile(`blue acknowledged drain after ([0-9.]+m?s)`)
	for _, r := range d.History {
		if m := re.FindStringSubmatch(r.Message); m != nil {
			waited, _ = time.ParseDuration(m[1])
		}
	}
	if waited < 500*time.Millisecond {
		t.Errorf("the drain was acked after %s with 2-second messages in flight: it did not wait for them (%+v)", waited, d.History)
	}
	sent := int(seq.Load())
	answered := func() int {
		n := 0
		for i := base + 1; i <= sent; i++ {
			if got[i] > 0 {
				n++
			}
		}
		return n
	}
	testenv.WaitFor(t, time.Minute, "every message answered", func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := answered(); n < sent-base {
			return fmt.Errorf("%d of %d answered", n, sent-base)
		}
		return nil
	})
	time.Sleep(time.Second) // duplicates, if any, arrive
	mu.Lock()
	defer mu.Unlock()
	var lost, dup []string
	byVersion := map[string]int{}
	for i := base + 1; i <= sent; i++ {
		switch got[i] {
		case 0:
			lost = append(lost, strconv.Itoa(i))
		case 1:
		default:
			dup = append(dup, strconv.Itoa(i))
		}
		byVersion[versions[i]]++
	}
	t.Logf("%d messages: drain acked after %s; answered by version %v", sent-base, waited, byVersion)
	if len(lost) > 0 || len(dup) > 0 {
		t.Errorf("lost %v, duplicated %v of %d messages", lost, dup, sent-base)
	}
	if byVersion["v2"] == 0 || byVersion["v1"] == 0 {
		t.Errorf("answers by version %v: want both v1 (in flight at the drain) and v2 (held, then replayed)", byVersion)
	}
}

// adminPaths are the editor and admin API paths of Node-RED 4.
var adminPaths = []string{
	"/", "/auth/login", "/auth/token", "/auth/revoke", "/flows", "/flows/state", "/flow/pf-tab", "/nodes",
	"/nodes/node-red", "/nodes/node-red/inject", "/settings", "/settings/user", "/plugins", "/plugins/messages",
	"/diagnostics", "/context/global", "/context/flow/pf-tab", "/inject/pf-in", "/debug/view/view.html",
	"/library/flows", "/icons", "/icons/node-red/inject.svg", "/locales/editor", "/locales/nodes", "/comms",
	"/red/red.min.js", "/red/main.min.js", "/vendor/vendor.js", "/theme", "/credentials/http%20in/pf-in",
	"/redforge-admin", "/redforge-admin/",
}

// TestAdminPathsNotFound: through /i/{name}/ every admin path of Node-RED
// answers 404, whatever the method, at the root (where it used to live)
// and under the runtimes' admin root, however spelled (case, dot
// segments, doubled slashes, escapes); the http in endpoint still answers.
func TestAdminPathsNotFound(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "adm"}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/adm/flows", plainFlow("v1"), 200, nil)
	testenv.WaitFor(t, time.Minute, "the http in endpoint through the proxy", func() error {
		code, body, err := get(h.URL + "/i/adm/hello")
		if err != nil || code != 200 || !strings.Contains(body, "v1") {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	var paths []string
	for _, p := range adminPaths {
		paths = append(paths, p)
		if p != "/redforge-admin" && p != "/redforge-admin/" {
			paths = append(paths, "/redforge-admin"+p, "/REDFORGE-ADMIN"+p, "/x/../redforge-admin"+p, "//redforge-admin"+p,
				"/%72edforge-admin"+p)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range paths {
		for _, method := range []string{"GET", "POST", "PUT", "DELETE"} {
			req, _ := http.NewRequest(method, h.URL+"/i/adm"+p, strings.NewReader(`{"username":"redforge-hub","password":"guess","grant_type":"password","client_id":"node-red-admin","scope":"*"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, p, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// A redirect the hub's router makes for a path it cleans
			// (gin) leads to a path checked here too.
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMovedPermanently &&
				resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect {
				t.Errorf("%s /i/adm%s = %d %.120s, want 404", method, p, resp.StatusCode, b)
			}
			if strings.Contains(string(b), "access_token") || strings.Contains(string(b), "Node-RED") {
				t.Errorf("%s /i/adm%s answered with the admin API or the editor: %.200s", method, p, b)
			}
		}
	}
	if code, body, err := get(h.URL + "/i/adm/hello"); err != nil || code != 200 || !strings.Contains(body, "v1") {
		t.Errorf("the http in endpoint after the probes: %d %s %v", code, body, err)
	}
}
