package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const modelsUsage = "towerctl models list | add NAME:VERSION --provider P --upstream U [--kind chat|embedding] [--input-price USD] [--output-price USD] [--context N] [--current] | show NAME[:VERSION] | rollback NAME [--to VERSION] | bench DATASET --models a,b [--scorer S] [--concurrency N] [--max-p95-ms N] [--no-wait] | providers list | providers set ID --kind K --base-url URL [--api-key-stdin]"

type modelRow struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	Version       string  `json:"version"`
	Provider      string  `json:"provider"`
	Upstream      string  `json:"upstream"`
	Kind          string  `json:"kind"`
	ContextLength int     `json:"context_length"`
	InputPrice    float64 `json:"input_price"`
	OutputPrice   float64 `json:"output_price"`
	Status        string  `json:"status"`
	Current       bool    `json:"current"`
	Previous      string  `json:"previous"`
	Quality       float64 `json:"quality"`
	Figures       struct {
		Calls     int     `json:"calls"`
		ErrorRate float64 `json:"error_rate"`
		P50MS     float64 `json:"p50_ms"`
		P95MS     float64 `json:"p95_ms"`
		P99MS     float64 `json:"p99_ms"`
	} `json:"figures"`
	Versions []string `json:"versions"`
}

// runModels is towerctl models ….
func runModels(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: " + modelsUsage)
	}
	switch args[0] {
	case "list", "ls":
		return modelsList(ctx, cl, out)
	case "add":
		return modelsAdd(ctx, cl, args[1:], out)
	case "show":
		if len(args) != 2 {
			return errors.New("usage: towerctl models show NAME[:VERSION]")
		}
		var m modelRow
		if _, err := cl.api(ctx, http.MethodGet, "/api/models/"+url.PathEscape(args[1]), nil, &m); err != nil {
			return err
		}
		return printModel(out, m)
	case "rollback":
		fs := newFlags("models rollback")
		to := fs.String("to", "", "the version to make current (default: the one current before)")
		name, err := parseWithName(fs, args[1:], "towerctl models rollback NAME [--to VERSION]")
		if err != nil {
			return err
		}
		var res struct{ From, To string }
		body, _ := json.Marshal(map[string]string{"to": *to})
		if _, err := cl.api(ctx, http.MethodPost, "/api/models/"+url.PathEscape(name)+"/rollback", bytes.NewReader(body), &res); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s rolled back: %s → %s\n", name, res.From, res.To)
		return err
	case "bench":
		return modelsBench(ctx, cl, args[1:], out)
	case "providers":
		return modelsProviders(ctx, cl, args[1:], out)
	}
	return fmt.Errorf("unknown subcommand %q; usage: %s", args[0], modelsUsage)
}

func modelsList(ctx context.Context, cl *Client, out io.Writer) error {
	var resp struct {
		Models []modelRow `json:"models"`
	}
	if _, err := cl.api(ctx, http.MethodGet, "/api/models", nil, &resp); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tPROVIDER\tUPSTREAM\tKIND\tSTATUS\tCURRENT\t$IN/1M\t$OUT/1M\tQUALITY\tCALLS\tP95")
	for _, m := range resp.Models {
		cur := ""
		if m.Current {
			cur = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%g\t%g\t%s\t%d\t%s\n", m.ID, m.Provider, m.Upstream, m.Kind, m.Status, cur,
			m.InputPrice, m.OutputPrice, quality(m.Quality), m.Figures.Calls, ms(m.Figures.P95MS))
	}
	return tw.Flush()
}

func quality(q float64) string {
	if q == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", q*100)
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", v)
}

func printModel(out io.Writer, m modelRow) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{
		{"model", m.ID}, {"provider", m.Provider}, {"upstream", m.Upstream}, {"kind", m.Kind}, {"status", m.Status},
		{"current", fmt.Sprint(m.Current)}, {"previous", orDash(m.Previous)}, {"versions", strings.Join(m.Versions, ", ")},
		{"context", fmt.Sprint(m.ContextLength)}, {"price", fmt.Sprintf("$%g in, $%g out per million tokens", m.InputPrice, m.OutputPrice)},
		{"quality", quality(m.Quality)},
		{"live (this hub, 5 min)", fmt.Sprintf("%d calls, p50 %s, p95 %s, p99 %s, errors %.1f%%", m.Figures.Calls, ms(m.Figures.P50MS), ms(m.Figures.P95MS), ms(m.Figures.P99MS), m.Figures.ErrorRate*100)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

func modelsAdd(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	const usage = "towerctl models add NAME:VERSION --provider P --upstream U [--kind chat|embedding] [--input-price USD] [--output-price USD] [--context N] [--current]"
	fs := newFlags("models add")
	provider := fs.String("provider", "", "the provider id (towerctl models providers list)")
	upstream := fs.String("upstream", "", "the provider's name for the model, e.g. llama3.2:3b")
	kind := fs.String("kind", "chat", "chat or embedding")
	in := fs.Float64("input-price", 0, "US dollars per million input tokens")
	outp := fs.Float64("output-price", 0, "US dollars per million output tokens")
	ctxLen := fs.Int("context", 0, "context length in tokens (0: unknown)")
	current := fs.Bool("current", false, "make this version the current one of its name")
	ref, err := parseWithName(fs, args, usage)
	if err != nil {
		return err
	}
	name, version, ok := strings.Cut(ref, ":")
	if !ok {
		return errors.New("name the version: NAME:VERSION, e.g. llama3.2:v1; usage: " + usage)
	}
	body := map[string]any{"name": name, "version": version, "provider": *provider, "upstream": *upstream, "kind": *kind,
		"input_price": *in, "output_price": *outp, "context_length": *ctxLen}
	if *current {
		body["current"] = true
	}
	b, _ := json.Marshal(body)
	var m modelRow
	if _, err := cl.api(ctx, http.MethodPost, "/api/models", bytes.NewReader(b), &m, http.StatusCreated); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "model %s added (current: %v)\n", m.ID, m.Current)
	return err
}

func modelsProviders(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "list" || args[0] == "ls" {
		var resp struct {
			Providers []struct {
				ID        string `json:"id"`
				Kind      string `json:"kind"`
				BaseURL   string `json:"base_url"`
				HasAPIKey bool   `json:"has_api_key"`
				Models    int    `json:"models"`
			} `json:"providers"`
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/models/providers", nil, &resp); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROVIDER\tKIND\tBASE URL\tAPI KEY\tMODELS")
		for _, p := range resp.Providers {
			key := "-"
			if p.HasAPIKey {
				key = "set (write-only)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", p.ID, p.Kind, p.BaseURL, key, p.Models)
		}
		return tw.Flush()
	}
	if args[0] != "set" {
		return fmt.Errorf("unknown subcommand %q: want providers list or providers set", args[0])
	}
	const usage = "towerctl models providers set ID --kind ollama|openai|anthropic --base-url URL [--api-key-stdin]"
	fs := newFlags("models providers set")
	kind := fs.String("kind", "", "ollama, openai (or compatible) or anthropic")
	base := fs.String("base-url", "", "the API's base URL, e.g. http://127.0.0.1:11434 or https://api.openai.com/v1")
	keyStdin := fs.Bool("api-key-stdin", false, "read the API key from standard input (never from the command line)")
	id, err := parseWithName(fs, args[1:], usage)
	if err != nil {
		return err
	}
	body := map[string]any{"kind": *kind, "base_url": *base}
	if *keyStdin {
		k, err := io.ReadAll(io.LimitReader(cl.stdin, 8192))
		if err != nil {
			return err
		}
		body["api_key"] = strings.TrimSpace(string(k))
	}
	b, _ := json.Marshal(body)
	if _, err := cl.api(ctx, http.MethodPut, "/api/models/providers/"+url.PathEscape(id), bytes.NewReader(b), nil); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "provider %s set\n", id)
	return err
}

type benchRun struct {
	ID      string `json:"id"`
	Dataset string `json:"dataset"`
	Status  string `json:"status"`
	Error   string `json:"error"`
	Results []struct {
		Model    string  `json:"model"`
		Queries  int     `json:"queries"`
		Correct  int     `json:"correct"`
		Errors   int     `json:"errors"`
		Accuracy float64 `json:"accuracy"`
		P50MS    float64 `json:"p50_ms"`
		P95MS    float64 `json:"p95_ms"`
		P99MS    float64 `json:"p99_ms"`
		CostUSD  float64 `json:"cost_usd"`
	} `json:"results"`
	Recommendations []struct {
		Kind, Model, Why string
	} `json:"recommendations"`
}

// modelsBench is towerctl models bench DATASET --models a,b: DATASET is
// "sample" (the hub's) or a JSON file of queries ({"queries":[{"prompt",
// "expected"}]} or just the array).
func modelsBench(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	const usage = "towerctl models bench DATASET --models a,b [--scorer contains|exact|regex|embedding] [--embedding-model M] [--concurrency N] [--max-p95-ms N] [--no-wait]"
	fs := newFlags("models bench")
	list := fs.String("models", "", "models to compare, comma-separated")
	scorer := fs.String("scorer", "contains", "contains, exact, regex or embedding")
	embedModel := fs.String("embedding-model", "", "the embedding model of the embedding scorer")
	conc := fs.Int("concurrency", 4, "queries in flight per model")
	maxP95 := fs.Int64("max-p95-ms", 0, "the SLA for the best-within-SLA recommendation")
	noWait := fs.Bool("no-wait", false, "start the run and return")
	dataset, err := parseWithName(fs, args, usage)
	if err != nil {
		return err
	}
	if *list == "" {
		return errors.New("--models is required; usage: " + usage)
	}
	body := map[string]any{"models": strings.Split(*list, ","), "scorer": *scorer, "concurrency": *conc, "max_p95_ms": *maxP95,
		"embedding_model": *embedModel}
	if dataset == "sample" {
		body["dataset"] = "sample"
	} else {
		qs, err := readQueries(dataset)
		if err != nil {
			return err
		}
		body["dataset"], body["queries"] = strings.TrimSuffix(dataset[strings.LastIndex(dataset, "/")+1:], ".json"), qs
	}
	b, _ := json.Marshal(body)
	var run benchRun
	if _, err := cl.api(ctx, http.MethodPost, "/api/models/benchmarks", bytes.NewReader(b), &run, http.StatusAccepted); err != nil {
		return err
	}
	fmt.Fprintf(out, "benchmark %s started on %s\n", run.ID, run.Dataset)
	if *noWait {
		return nil
	}
	for run.Status == "running" {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/models/benchmarks/"+url.PathEscape(run.ID), nil, &run); err != nil {
			return err
		}
	}
	if run.Status != "done" {
		return fmt.Errorf("benchmark %s %s: %s", run.ID, run.Status, run.Error)
	}
	return printBench(out, run)
}

func printBench(out io.Writer, run benchRun) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tACCURACY\tCORRECT\tERRORS\tP50\tP95\tP99\tCOST")
	for _, r := range run.Results {
		fmt.Fprintf(tw, "%s\t%.1f%%\t%d/%d\t%d\t%.1fms\t%.1fms\t%.1fms\t$%.6f\n", r.Model, r.Accuracy*100, r.Correct, r.Queries, r.Errors,
			r.P50MS, r.P95MS, r.P99MS, r.CostUSD)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range run.Recommendations {
		fmt.Fprintf(out, "%s: %s (%s)\n", strings.ReplaceAll(r.Kind, "_", " "), r.Model, r.Why)
	}
	return nil
}

func readQueries(path string) ([]map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var qs []map[string]string
	if err := json.Unmarshal(b, &qs); err == nil {
		return qs, nil
	}
	var d struct {
		Queries []map[string]string `json:"queries"`
	}
	if err := json.Unmarshal(b, &d); err != nil || len(d.Queries) == 0 {
		return nil, fmt.Errorf("dataset %s: want {\"queries\":[{\"prompt\":…,\"expected\":…}]} or the array", path)
	}
	return d.Queries, nil
}

const routesUsage = "towerctl routes llm set NAME --policy cheapest_sla|fixed|sla --candidates a,b [--max-p95-ms N] [--min-quality Q] [--window-ms N] [--attempt-timeout-ms N] [--deadline-ms N] | routes llm show [NAME]"

// runRoutes is towerctl routes llm set|show.
func runRoutes(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) < 2 || args[0] != "llm" {
		return errors.New("usage: " + routesUsage)
	}
	switch args[1] {
	case "show", "list", "ls":
		var routes []map[string]any
		if len(args) > 2 {
			var r map[string]any
			if _, err := cl.api(ctx, http.MethodGet, "/api/routes/llm/"+url.PathEscape(args[2]), nil, &r); err != nil {
				return err
			}
			routes = append(routes, r)
		} else {
			var resp struct {
				Routes []map[string]any `json:"routes"`
			}
			if _, err := cl.api(ctx, http.MethodGet, "/api/routes/llm", nil, &resp); err != nil {
				return err
			}
			routes = resp.Routes
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUTE\tPOLICY\tCANDIDATES\tMAX P95\tMIN QUALITY\tWINDOW\tATTEMPT\tDEADLINE")
		for _, r := range routes {
			var cands []string
			for _, c := range r["candidates"].([]any) {
				cands = append(cands, fmt.Sprint(c))
			}
			fmt.Fprintf(tw, "%v\t%v\t%s\t%s\t%v\t%s\t%s\t%s\n", r["name"], r["policy"], strings.Join(cands, " → "),
				msOf(r["max_p95_ms"]), orZero(r["min_quality"]), msOf(r["window_ms"]), msOf(r["attempt_timeout_ms"]), msOf(r["deadline_ms"]))
		}
		return tw.Flush()
	case "set":
		fs := newFlags("routes llm set")
		policy := fs.String("policy", "", "cheapest_sla, fixed or sla")
		cands := fs.String("candidates", "", "models in preference order, comma-separated (name or name:version)")
		maxP95 := fs.Int64("max-p95-ms", 0, "the SLA's p95 latency bound")
		minQ := fs.Float64("min-quality", 0, "the lowest benchmark quality accepted (0-1)")
		window := fs.Int64("window-ms", 0, "the window the p95 is measured over (default 60000)")
		attempt := fs.Int64("attempt-timeout-ms", 0, "one attempt's timeout (default 30000)")
		deadline := fs.Int64("deadline-ms", 0, "the whole call's deadline with fallbacks (default 60000)")
		name, err := parseWithName(fs, args[2:], routesUsage)
		if err != nil {
			return err
		}
		body := map[string]any{"policy": *policy, "candidates": strings.Split(*cands, ","), "max_p95_ms": *maxP95,
			"min_quality": *minQ, "window_ms": *window, "attempt_timeout_ms": *attempt, "deadline_ms": *deadline}
		b, _ := json.Marshal(body)
		if _, err := cl.api(ctx, http.MethodPut, "/api/routes/llm/"+url.PathEscape(name), bytes.NewReader(b), nil); err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "route %s set: %s over %s\n", name, *policy, *cands)
		return err
	}
	return errors.New("usage: " + routesUsage)
}

func msOf(v any) string {
	if f, ok := v.(float64); ok && f > 0 {
		return fmt.Sprintf("%.0fms", f)
	}
	return "-"
}

func orZero(v any) any {
	if v == nil {
		return 0
	}
	return v
}
