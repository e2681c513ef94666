// Package benchinfo is what the edge benchmarks print so that their figures
// are never compared as absolutes across machines: the machine (CPU model,
// cores) and the commit, and each figure as a ratio to a reference
// measured in the same run, in one line per figure that the bench-edge
// report (internal/benchinfo/report) turns into a table of medians.
// Benchmarks and tools only.
package benchinfo

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/cpuid/v2"
)

// Machine describes where a benchmark runs.
type Machine struct {
	CPU    string // the CPU's brand string
	Cores  int    // runtime.NumCPU
	Commit string // REDFORGE_BENCH_COMMIT, or git describe --always --dirty
}

func (m Machine) String() string {
	return fmt.Sprintf("cpu=%q cores=%d commit=%s", m.CPU, m.Cores, m.Commit)
}

var (
	once    sync.Once
	machine Machine
)

// This returns the machine the process runs on.
func This() Machine {
	once.Do(func() {
		machine = Machine{CPU: cpuModel(), Cores: runtime.NumCPU(), Commit: commit()}
	})
	return machine
}

// cpuModel is the CPU's brand string (CPUID, what go test prints as
// "cpu:"), else the model name in /proc/cpuinfo.
func cpuModel() string {
	if name := strings.TrimSpace(cpuid.CPU.BrandName); name != "" {
		return name
	}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func commit() string {
	if c := os.Getenv("REDFORGE_BENCH_COMMIT"); c != "" {
		return c
	}
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// Figure is one result of a benchmark held to a reference measured in the
// same run: Ratio = Value / Reference, and the goal is Ratio ≥ Goal.
type Figure struct {
	Name      string  // e.g. "drain 768-dim vectors"
	Unit      string  // of Value and Reference, e.g. "records/s"
	Value     float64 // ours
	RefName   string  // e.g. "raw COPY"
	Reference float64
	Goal      float64 // the least Ratio that meets the goal; 0: a diagnostic, with none
}

// Ratio is Value / Reference.
func (f Figure) Ratio() float64 { return f.Value / f.Reference }

// Prefix starts every line Report prints; the report tool reads them.
const Prefix = "benchinfo:"

// Report prints f with the machine, as one line starting with Prefix, and
// reports the ratio as a benchmark metric.
func Report(b *testing.B, f Figure) {
	b.ReportMetric(f.Ratio(), "ratio")
	verdict := fmt.Sprintf("goal ≥ %.2f×, meets", f.Goal)
	switch {
	case f.Goal == 0:
		verdict = "a diagnostic, no goal"
	case f.Ratio() < f.Goal:
		verdict = fmt.Sprintf("goal ≥ %.2f×, misses", f.Goal)
	}
	fmt.Printf("%s figure=%q unit=%q value=%.0f ref=%q reference=%.0f ratio=%.3f goal=%.2f %s\n",
		Prefix, f.Name, f.Unit, f.Value, f.RefName, f.Reference, f.Ratio(), f.Goal, This())
	fmt.Printf("%s: %.0f %s against %s %.0f %s: %.2f× (%s) on %s, %d cores, commit %s\n",
		f.Name, f.Value, f.Unit, f.RefName, f.Reference, f.Unit, f.Ratio(), verdict, This().CPU, This().Cores, This().Commit)
}

// CPU returns the CPU time (user and system) this process has used: the
// difference over a section, divided by the records it handled, is a
// cost that a busy machine distorts far less than a rate.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Median is the median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// Percentile is the p-th percentile (0-100, nearest rank) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*p/100)) - 1
	return s[max(0, min(i, len(s)-1))]
}
