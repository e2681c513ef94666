package hub_test

import (
	"fmt"
	"github.com/redforge/controltower/internal/benchinfo"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// blueGreenRun deploys to a fresh instance under 200 HTTP req/s through
// /i/{name}/hello and returns the deployment's total and DRAIN times and
// the failed requests. contract chooses the example flows that implement
// the control contract; otherwise the plain flow, with the default drain
// timeout.
func blueGreenRun(b *testing.B, contract bool) (total, drain time.Duration, failed, requests int) {
	h := hubtest.Start(b)
	h.JSON(b, "POST", "/api/instances", map[string]any{"name": "bench"}, 201, nil)
	v1, v2 := plainFlow("v1"), plainFlow("v2")
	if contract {
		v1, v2 = bgFlows(b, "bluegreen-v1.json"), bgFlows(b, "bluegreen-v2.json")
	}
	h.JSON(b, "PUT", "/api/instances/bench/flows", v1, 200, nil)
	testenv.WaitFor(b, time.Minute, "v1 answering", func() error {
		code, body, err := get(h.URL + "/i/bench/hello")
		if err != nil || code != 200 || !strings.Contains(body, "v1") {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	load := startHTTPLoad(b, h, "bench", 200)
	time.Sleep(2 * time.Second) // steady state before the deployment
	d := bgDeploy(b, h, map[string]any{"instance": "bench", "flows": v2, "rollback_window": "0s",
		"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v2"`}}})
	time.Sleep(time.Second)
	requests, failed, _ = load.finish(b)
	if d.Status != "succeeded" {
		b.Fatalf("deployment: %s %s", d.Status, d.Error)
	}
	total, drain = deploymentTotal(d)
	return total, drain, failed, requests
}

// BenchmarkPlainFlowBlueGreen measures a blue-green deployment of a flow
// that knows nothing of the control contract (GET /hello → change → http
// response), with the default drain timeout (5 min), under 200 requests/s
// through the hub, beside the contract flow of the examples measured in
// the same run: total time, DRAIN and failed requests, median of three
// each. Before the runtime plugin, the plain flow sat in DRAIN for the
// whole drain timeout. Run by `make bench`.
func BenchmarkPlainFlowBlueGreen(b *testing.B) {
	for range b.N {
		var pTotal, pDrain, cTotal, cDrain []time.Duration
		pFailed, cFailed, pReq, cReq := 0, 0, 0, 0
		for range 3 {
			t, d, f, r := blueGreenRun(b, false)
			pTotal, pDrain, pFailed, pReq = append(pTotal, t), append(pDrain, d), pFailed+f, pReq+r
			t, d, f, r = blueGreenRun(b, true)
			cTotal, cDrain, cFailed, cReq = append(cTotal, t), append(cDrain, d), cFailed+f, cReq+r
		}
		pt, ct := median(pTotal), median(cTotal)
		b.ReportMetric(pt.Seconds(), "plain-total-s")
		b.ReportMetric(float64(median(pDrain).Milliseconds()), "plain-drain-ms")
		b.ReportMetric(float64(pFailed), "plain-failed-req")
		b.ReportMetric(ct.Seconds(), "contract-total-s")
		b.ReportMetric(float64(cFailed), "contract-failed-req")
		fmt.Printf("blue-green at 200 req/s (%s), median of 3:\n"+
			"  plain flow, default drain timeout: total %s (DRAIN %s), %d of %d requests failed\n"+
			"  contract flow (reference):         total %s (DRAIN %s), %d of %d requests failed\n"+
			"  plain / contract total: %.2f×; before the runtime plugin the plain flow waited the drain timeout (5m0s) in DRAIN\n",
			benchinfo.This().String(), pt.Round(time.Millisecond), median(pDrain).Round(time.Millisecond), pFailed, pReq,
			ct.Round(time.Millisecond), median(cDrain).Round(time.Millisecond), cFailed, cReq, pt.Seconds()/ct.Seconds())
	}
}
