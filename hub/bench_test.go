package hub_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// benchDrivers are the fleet drivers the API benchmarks run with.
func benchDriver(b *testing.B, name string) func(*hub.Config) {
	return func(c *hub.Config) {
		c.Driver = name
		if name == "docker" {
			c.DockerHost = testenv.Docker(b)
			c.DockerNetwork = "host"
			c.Image = testenv.NodeREDImage(b)
		}
	}
}

// BenchmarkCreateToHealthy measures POST /api/instances → "running" on the
// WebSocket for 1 and 20 instances created at once, per driver, and the
// hub's RSS with 20 instances.
func BenchmarkCreateToHealthy(b *testing.B) {
	for _, driver := range []string{"process", "docker"} {
		for _, n := range []int{1, 20} {
			b.Run(fmt.Sprintf("%s/%d", driver, n), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					h := hubtest.Start(b, benchDriver(b, driver))
					w := watchStatusB(b, h)
					start := time.Now()
					ids := make([]string, n)
					for j := range ids {
						var inst instance
						h.JSON(b, "POST", "/api/instances", map[string]any{"name": fmt.Sprintf("b%d", j), "resources": map[string]any{"memory_mb": 256}}, 201, &inst)
						ids[j] = inst.ID
					}
					var slowest time.Duration
					for _, id := range ids {
						w.waitB(b, id, fleet.StatusRunning, 5*time.Minute)
						if d := time.Since(start); d > slowest {
							slowest = d
						}
					}
					b.ReportMetric(slowest.Seconds(), "s_to_all_healthy")
					if n == 20 {
						b.ReportMetric(float64(rssBytes())/(1<<20), "hub_rss_MB")
					}
				}
			})
		}
	}
}

// BenchmarkStatusToWebSocket measures how long after a process dies the
// WebSocket reports the instance failed (monitor interval 1 s).
func BenchmarkStatusToWebSocket(b *testing.B) {
	h := hubtest.Start(b)
	w := watchStatusB(b, h)
	var inst instance
	h.JSON(b, "POST", "/api/instances", map[string]any{"name": "ws"}, 201, &inst)
	w.waitB(b, inst.ID, fleet.StatusRunning, 2*time.Minute)
	h.JSON(b, "GET", "/api/instances/ws", nil, 200, &inst)
	rid := inst.Allocations[0].ID
	for i := 0; i < b.N; i++ {
		rt, err := h.Driver.Inspect(b.Context(), rid)
		if err != nil {
			b.Fatal(err)
		}
		pid, _ := strconv.Atoi(rt.RuntimeID)
		killed := time.Now()
		_ = syscall.Kill(pid, syscall.SIGKILL)
		w.waitB(b, inst.ID, fleet.StatusFailed, time.Minute)
		b.ReportMetric(time.Since(killed).Seconds(), "s_kill_to_ws")
		w.waitB(b, inst.ID, fleet.StatusRunning, 2*time.Minute)
	}
}

// rssBytes is this process's resident set (the hub runs in-process).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
