package edgesync_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/testenv"
)

// TestExactlyOnceThroughCutLink publishes N records (REDFORGE_SYNC_TEST_RECORDS,
// default 100000, the figure) across the five streams from 4 paho clients into a real
// redforge-edge process whose only path to a real hub (Raft, Postgres) is a
// toxiproxy link that is cut and restored repeatedly; the hub is also
// restarted twice mid-sync. The hub's Postgres must then hold every record
// exactly once, byte-identical (CRC-32C), seqs contiguous per stream.
func TestExactlyOnceThroughCutLink(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	n := envInt("REDFORGE_SYNC_TEST_RECORDS", 100000)
	th := startHub(t, testenv.Postgres(t))
	link := testenv.Proxy(t, th.cfg.Listen)
	dataDir := t.TempDir()
	edge := startEdge(t, nil, buildEdge(t, runtime.GOARCH, ""), dataDir,
		"--hub", "http://"+link.Addr(), "--token", th.token(t), "--sync-batch", "200")
	edge.WaitMQTT(t, 30*time.Second)
	edgeID := edgeIDOf(t, dataDir, 30*time.Second)

	// Chaos: the link is down about half the time, from the first publish
	// until at least minCuts cuts happened and the publishers are done;
	// the hub restarts twice while batches are in flight.
	const minCuts = 12
	published := make(chan struct{})
	var chaos sync.WaitGroup
	cuts, restarts := 0, 0
	chaos.Go(func() {
		for i := 0; ; i++ {
			if i >= minCuts {
				select {
				case <-published:
					return
				default:
				}
			}
			link.Cut()
			cuts++
			time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond)
			link.Restore()
			if i == 3 || i == 8 {
				// With the link up and a backlog waiting, batches are in
				// flight: the hub stops (draining in-flight requests,
				// refusing new ones) and comes back on the same ports.
				time.Sleep(30 * time.Millisecond)
				th.restart()
				restarts++
			}
			time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		}
	})

	start := time.Now()
	var mu sync.Mutex
	var acked []edgecheck.Published
	var pubs sync.WaitGroup
	per := n / 4
	for p := range 4 {
		pubs.Go(func() {
			got := publish(edge.MQTT, fmt.Sprintf("pub-%d", p), p*per, (p+1)*per, 64)
			mu.Lock()
			acked = append(acked, got...)
			mu.Unlock()
		})
	}
	pubs.Wait()
	pubTime := time.Since(start)
	close(published)
	if len(acked) != 4*per {
		t.Fatalf("only %d of %d publishes were PUBACKed\n%s", len(acked), 4*per, edge.Logs.String())
	}
	chaos.Wait()
	testenv.WaitFor(t, 120*time.Second, "hub to hold every record", func() error {
		if got := th.total(edgeID); got != int64(len(acked)) {
			return fmt.Errorf("hub holds %d of %d", got, len(acked))
		}
		return nil
	})
	verifyHub(t, th.H.Store, edgeID, acked, false)
	// The edge's metrics tell the story: failures by reason, last sync, lag.
	resp, err := http.Get("http://" + edge.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`redforge_edge_sync_failures_total{reason="network"}`, `redforge_edge_sync_last_success_timestamp_seconds{stream="audit"}`,
		`redforge_edge_sync_lag_records{stream="vectors"} 0`, `redforge_edge_outbox_evicted_total{stream="vectors"} 0`, `redforge_edge_sync_records_total{stream="metrics"}`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("edge /metrics lacks %s", want)
		}
	}
	if strings.Contains(string(metrics), `redforge_edge_sync_failures_total{reason="network"} 0`) {
		t.Errorf("link cuts were not counted as network failures")
	}
	t.Logf("%d records: published (PUBACKed) in %s, all on the hub exactly once after %s, %d link cuts, %d hub restarts",
		len(acked), pubTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), cuts, restarts)
}
