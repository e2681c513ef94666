// Command report reads the output of the edge benchmarks (make bench-edge)
// on stdin and writes a markdown table of their figures to stdout: per
// figure, the median over the runs of our value, of the reference measured
// in the same run and of the ratio between them, each run's ratio, and
// whether the median meets the goal, with the machine and the commit.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/internal/benchinfo"
)

// run is one benchinfo line.
type run struct {
	kv map[string]string
}

func (r run) num(k string) float64 {
	f, _ := strconv.ParseFloat(r.kv[k], 64)
	return f
}

// parse splits `k=v k="quoted v" word` into its key=value pairs.
func parse(line string) run {
	r := run{kv: map[string]string{}}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		k, rest, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsRune(k, ' ') {
			_, line, _ = strings.Cut(line, " ")
			continue
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return r
			}
			v, _ = strconv.Unquote(q)
			line = rest[len(q):]
		} else {
			v, line, _ = strings.Cut(rest, " ")
		}
		r.kv[k] = v
	}
	return r
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	if err := report(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func report(in io.Reader, out io.Writer) error {
	var order []string
	runs := map[string][]run{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), benchinfo.Prefix)
		if !ok {
			continue
		}
		r := parse(line)
		name := r.kv["figure"]
		if name == "" {
			continue
		}
		if _, seen := runs[name]; !seen {
			order = append(order, name)
		}
		runs[name] = append(runs[name], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(order) == 0 {
		return fmt.Errorf("no %q lines in the input: did the benchmarks run?", benchinfo.Prefix)
	}
	first := runs[order[0]][0].kv
	fmt.Fprintf(out, "# Edge benchmarks\n\n%s, %s cores, commit %s; %s. Each figure is the median of its runs; each ratio is taken against the reference measured in the same run, never across runs or machines.\n\n",
		first["cpu"], first["cores"], first["commit"], time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintln(out, "| figure | ours (median) | reference | reference (median) | ratio per run | median ratio | goal | |")
	fmt.Fprintln(out, "|---|---:|---|---:|---|---:|---:|---|")
	for _, name := range order {
		rs := runs[name]
		var vals, refs, ratios []float64
		var per []string
		for _, r := range rs {
			vals, refs, ratios = append(vals, r.num("value")), append(refs, r.num("reference")), append(ratios, r.num("ratio"))
			per = append(per, fmt.Sprintf("%.2f", r.num("ratio")))
		}
		goal, m := rs[0].num("goal"), median(ratios)
		goalCol, verdict := fmt.Sprintf("≥ %.2f×", goal), "meets"
		switch {
		case goal == 0:
			goalCol, verdict = "none", "diagnostic"
		case m < goal:
			verdict = "misses"
		}
		unit := rs[0].kv["unit"]
		fmt.Fprintf(out, "| %s | %.0f %s | %s | %.0f %s | %s | %.2f× | %s | %s (%d runs) |\n",
			name, median(vals), unit, rs[0].kv["ref"], median(refs), unit, strings.Join(per, ", "), m, goalCol, verdict, len(rs))
	}
	return nil
}
