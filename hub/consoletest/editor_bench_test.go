package consoletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/fleet"
)

// BenchmarkEditorLoad measures how long the Node-RED editor takes to load
// in Chromium (page, scripts, node definitions, flows) through the hub
// (/editor/{name}/, the console's editor session) against straight from
// the runtime's admin root (the same editor token in the header), median
// of three each. Run by `make bench`.
func BenchmarkEditorLoad(b *testing.B) {
	for range b.N {
		h, dir := editorHub(b, "bench")
		var inst struct {
			LiveRow     string `json:"live_row"`
			Allocations []struct {
				Address string `json:"address"`
			} `json:"allocations"`
		}
		h.JSON(b, "GET", "/api/instances/bench", nil, 200, &inst)
		if len(inst.Allocations) == 0 {
			b.Fatal("no replica")
		}
		tok, err := h.Auth.SignEditorToken(auth.EditorClaims{User: "bench", Permission: auth.EditorPermAll, Row: inst.LiveRow,
			Expires: time.Now().Add(10 * time.Minute).Unix()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, "node", "e2e/editor.mjs")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HUB_URL="+h.URL, "INSTANCE=bench", "TIMING=1",
			"OPERATOR_USER=olivia", "OPERATOR_PASSWORD=password-of-olivia", "CHROMIUM="+chromium,
			"DIRECT_URL=http://"+inst.Allocations[0].Address+fleet.AdminRoot+"/", "DIRECT_TOKEN="+tok,
			"SCREENSHOT_DIR="+filepath.Join(dir, "..", "artifacts", "screenshots"))
		out, err := cmd.Output()
		cancel()
		if err != nil {
			b.Fatalf("editor timing: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var res struct {
			Hub    []float64 `json:"hub"`
			Direct []float64 `json:"direct"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || len(res.Hub) == 0 || len(res.Direct) == 0 {
			b.Fatalf("editor timing output: %v\n%s", err, out)
		}
		med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
		hub, direct := med(res.Hub), med(res.Direct)
		b.ReportMetric(hub, "hub-ms")
		b.ReportMetric(direct, "direct-ms")
		b.ReportMetric(hub/direct, "hub/direct")
		model := "unknown CPU"
		if c, err := os.ReadFile("/proc/cpuinfo"); err == nil {
			for _, l := range strings.Split(string(c), "\n") {
				if _, v, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(l, "model name") {
					model = strings.TrimSpace(v)
					break
				}
			}
		}
		commit := "unknown"
		if c, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
			commit = strings.TrimSpace(string(c))
		}
		fmt.Printf("editor load in Chromium (%s, %d cores, commit %s), median of 3: through the hub %.0f ms, direct %.0f ms (%.2f×); runs hub %v direct %v\n",
			model, runtime.NumCPU(), commit, hub, direct, hub/direct, res.Hub, res.Direct)
	}
}
