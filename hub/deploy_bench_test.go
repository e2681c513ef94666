package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
)

// BenchmarkBlueGreenDeploy measures one v1 → v2 deployment of the example
// flows under 200 HTTP requests/s through /i/{name}/ and 200 MQTT
// messages/s to the instance's input topic (the peers' figures in issue 6
// are at 200 requests/s): duration per phase and in total, failed
// requests, lost and duplicated messages, and p99 latency through the
// proxy during the deployment versus steady state. Run by `make bench`.
func BenchmarkBlueGreenDeploy(b *testing.B) {
	for range b.N {
		h := hubtest.Start(b)
		h.JSON(b, "POST", "/api/instances", map[string]any{"name": "bench"}, 201, nil)
		if d := bgDeploy(b, h, map[string]any{"instance": "bench", "flows": bgFlows(b, "bluegreen-v1.json"),
			"drain_timeout": "1s", "rollback_window": "0s"}); d.Status != "succeeded" {
			b.Fatalf("v1: %s %s", d.Status, d.Error)
		}
		load := startLoad(b, h, "bench", 200)
		time.Sleep(3 * time.Second) // steady state
		load.from = time.Now()
		d := bgDeploy(b, h, map[string]any{"instance": "bench", "flows": bgFlows(b, "bluegreen-v2.json"),
			"drain_timeout": "30s", "rollback_window": "0s",
			"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v2"`}}})
		load.to = time.Now()
		if d.Status != "succeeded" {
			b.Fatalf("v2: %s %s", d.Status, d.Error)
		}
		time.Sleep(3 * time.Second)
		st := load.check(b, "v1", "v2")
		phases := map[string]time.Duration{}
		for i, r := range d.History {
			if i+1 < len(d.History) {
				phases[r.Phase] += d.History[i+1].At.Sub(r.At)
			}
		}
		total := d.History[len(d.History)-1].At.Sub(d.History[0].At)
		b.ReportMetric(total.Seconds(), "deploy-s")
		for _, p := range []string{"DRAIN", "DEPLOY", "VERIFY", "RESUME", "AUDIT", "CLEANUP"} {
			b.ReportMetric(float64(phases[p].Milliseconds()), p+"-ms")
		}
		b.ReportMetric(float64(st.failed), "failed-req")
		b.ReportMetric(float64(st.lost), "lost-msg")
		b.ReportMetric(float64(st.duplicated), "dup-msg")
		b.ReportMetric(float64(st.p99Steady.Microseconds())/1000, "p99-steady-ms")
		b.ReportMetric(float64(st.p99During.Microseconds())/1000, "p99-deploy-ms")
		fmt.Printf("blue-green v1→v2 at 200 req/s + 200 msg/s: total %s; phases %v; %d/%d requests failed; %d messages, %d lost, %d duplicated; p99 steady %s, during deployment %s\n",
			total.Round(time.Millisecond), phases, st.failed, st.requests, st.sent, st.lost, st.duplicated, st.p99Steady, st.p99During)
	}
}
