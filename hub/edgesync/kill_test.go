package edgesync_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/testenv"
)

// TestSIGKILLEdgeLosesNothing SIGKILLs a real redforge-edge process at
// random moments while 2 paho clients publish into it and its syncer
// pushes to a real hub (REDFORGE_SYNC_TEST_KILLS rounds, default 20). Then
// it lets the edge drain and checks: every record whose PUBACK a publisher
// received is on the hub exactly once; nothing is duplicated. (A record
// committed just before the kill but never PUBACKed may be on the hub too;
// the test counts those.)
func TestSIGKILLEdgeLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	rounds := envInt("REDFORGE_SYNC_TEST_KILLS", 20)
	th := startHub(t, testenv.Postgres(t))
	bin := buildEdge(t, runtime.GOARCH, "")
	dataDir := t.TempDir()
	args := []string{"--hub", th.URL(), "--token", th.token(t), "--sync-batch", "200"}
	var acked []edgecheck.Published
	next := 0
	start := time.Now()
	for round := range rounds {
		edge := startEdge(t, nil, bin, dataDir, args...)
		edge.WaitMQTT(t, 30*time.Second)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for p := range 2 {
			from := next + p*1000
			wg.Go(func() {
				got := publish(edge.MQTT, fmt.Sprintf("kill-%d-%d", round, p), from, from+1000, 32)
				mu.Lock()
				acked = append(acked, got...)
				mu.Unlock()
			})
		}
		next += 2000
		time.Sleep(time.Duration(100+rand.IntN(700)) * time.Millisecond)
		edge.Kill()
		wg.Wait()
	}
	edgeID := edgeIDOf(t, dataDir, 10*time.Second)
	edge := startEdge(t, nil, bin, dataDir, args...)
	testenv.WaitFor(t, 120*time.Second, "the edge outbox to drain", func() error {
		if d, err := outboxDepth(edge.HTTP); err != nil || d != 0 {
			return fmt.Errorf("depth %d (%v)", d, err)
		}
		return nil
	})
	extra := verifyHub(t, th.H.Store, edgeID, acked, true)
	t.Logf("%d SIGKILLs in %s: %d PUBACKed records all on the hub exactly once; %d more committed before a kill without a PUBACK; none duplicated",
		rounds, time.Since(start).Round(time.Millisecond), len(acked), extra)
}

// outboxDepth sums redforge_edge_outbox_depth from the edge's /metrics.
func outboxDepth(httpAddr string) (int64, error) {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	var total int64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "redforge_edge_outbox_depth{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return -1, err
		}
		total += int64(v)
		found = true
	}
	if !found {
		return -1, fmt.Errorf("no outbox depth in /metrics")
	}
	return total, sc.Err()
}
