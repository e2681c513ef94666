package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type instance struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Region       string            `json:"region"`
	Placement    string            `json:"placement"`
	Driver       string            `json:"driver"`
	Image        string            `json:"image"`
	DesiredState string            `json:"desired_state"`
	FlowsVersion string            `json:"flows_version"`
	Env          map[string]string `json:"env"`
	Resources    struct {
		CPU      float64 `json:"cpu"`
		MemoryMB int     `json:"memory_mb"`
	} `json:"resources"`
	Observed struct {
		Status    string    `json:"status"`
		RuntimeID string    `json:"runtime_id"`
		Port      int       `json:"port"`
		Since     time.Time `json:"since"`
		Message   string    `json:"message"`
	} `json:"observed"`
	Replicas    int       `json:"replicas"`
	Allocations []replica `json:"allocations"`
	CreatedAt   time.Time `json:"created_at"`
}

// replica is one replica of an instance and where it runs.
type replica struct {
	ID      string `json:"id"`
	Replica int    `json:"replica"`
	Hub     string `json:"hub"`
	Region  string `json:"region"`
	Status  string `json:"status"`
	Address string `json:"address"`
	Message string `json:"message"`
}

// where is a short "2/2 on hub-a, hub-b" of an instance's replicas.
func (i instance) where() string {
	running, hubs := 0, []string{}
	for _, a := range i.Allocations {
		if a.Status == "running" {
			running++
		}
		hubs = append(hubs, a.Hub)
	}
	if len(hubs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d on %s", running, max(i.Replicas, 1), strings.Join(hubs, ","))
}

func runInstances(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: towerctl instances list|create|show|start|stop|restart|scale|delete|logs|flows")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list", "ls":
		return instancesList(ctx, cl, out)
	case "create":
		return instancesCreate(ctx, cl, rest, out)
	case "show", "get":
		inst, err := instanceGet(ctx, cl, rest)
		if err != nil {
			return err
		}
		return printJSON(out, inst)
	case "start", "stop", "restart":
		if len(rest) != 1 {
			return fmt.Errorf("usage: towerctl instances %s NAME", sub)
		}
		var inst instance
		if _, err := cl.api(ctx, http.MethodPost, "/api/instances/"+url.PathEscape(rest[0])+"/"+sub, nil, &inst); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %s requested (status %s)\n", inst.Name, sub, orDash(inst.Observed.Status))
		return nil
	case "delete", "rm":
		if len(rest) != 1 {
			return fmt.Errorf("usage: towerctl instances delete NAME")
		}
		if _, err := cl.api(ctx, http.MethodDelete, "/api/instances/"+url.PathEscape(rest[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: deleted\n", rest[0])
		return nil
	case "scale":
		return instancesScale(ctx, cl, rest, out)
	case "logs":
		return instancesLogs(ctx, cl, rest, out)
	case "flows":
		return instancesFlows(ctx, cl, rest, out)
	}
	return fmt.Errorf("unknown subcommand %q", sub)
}

func instancesList(ctx context.Context, cl *Client, out io.Writer) error {
	var resp struct {
		Instances []instance `json:"instances"`
	}
	if _, err := cl.api(ctx, http.MethodGet, "/api/instances", nil, &resp); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tDESIRED\tREGION\tREPLICAS\tDRIVER\tCPU\tMEMORY\tFLOWS\tSINCE")
	for _, i := range resp.Instances {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%g\t%dMB\t%s\t%s\n", i.Name, orDash(i.Observed.Status), i.DesiredState,
			i.Region, i.where(), i.Driver, i.Resources.CPU, i.Resources.MemoryMB, orDash(truncate(i.FlowsVersion, 12)), since(i.Observed.Since))
	}
	return tw.Flush()
}

func instancesCreate(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("instances create")
	cpu := fs.Float64("cpu", 0, "CPU cores (0: no limit)")
	mem := fs.Int("memory", 0, "memory in MB (default 512)")
	region := fs.String("region", "", "region (default: the hub's)")
	placement := fs.String("placement", "", "pinned or failover")
	image := fs.String("image", "", "Docker image (docker driver)")
	stopped := fs.Bool("stopped", false, "create without starting")
	replicas := fs.Int("replicas", 0, "runtimes serving the instance, placed on distinct hubs of its region (1-9, default 1)")
	wait := fs.Bool("wait", false, "wait until the instance is running")
	var env multiFlag
	fs.Var(&env, "env", "KEY=VALUE (repeatable)")
	name, err := parseWithName(fs, args, "towerctl instances create NAME [--cpu N] [--memory MB] [--env K=V] [--wait]")
	if err != nil {
		return err
	}
	req := map[string]any{"name": name}
	res := map[string]any{}
	if *cpu > 0 {
		res["cpu"] = *cpu
	}
	if *mem > 0 {
		res["memory_mb"] = *mem
	}
	if len(res) > 0 {
		req["resources"] = res
	}
	for k, v := range map[string]string{"region": *region, "placement": *placement, "image": *image} {
		if v != "" {
			req[k] = v
		}
	}
	if *stopped {
		req["desired_state"] = "stopped"
	}
	if *replicas != 0 {
		req["replicas"] = *replicas
	}
	if len(env) > 0 {
		m := map[string]string{}
		for _, kv := range env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("--env %q: want KEY=VALUE", kv)
			}
			m[k] = v
		}
		req["env"] = m
	}
	body, _ := json.Marshal(req)
	var inst instance
	if _, err := cl.api(ctx, http.MethodPost, "/api/instances", bytes.NewReader(body), &inst); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: created (id %s)\n", inst.Name, inst.ID)
	if !*wait {
		return nil
	}
	last := ""
	for {
		if _, err := cl.api(ctx, http.MethodGet, "/api/instances/"+inst.ID, nil, &inst); err != nil {
			return err
		}
		if s := inst.Observed.Status; s != last {
			fmt.Fprintf(out, "%s: %s %s\n", inst.Name, s, inst.Observed.Message)
			last = s
		}
		switch inst.Observed.Status {
		case "running":
			fmt.Fprintf(out, "%s: running (%s)\n", inst.Name, inst.where())
			return nil
		case "error", "crash_looping":
			return fmt.Errorf("%s: %s: %s", inst.Name, inst.Observed.Status, inst.Observed.Message)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// instancesScale sets an instance's replica count and, with --wait, waits
// until that many run.
func instancesScale(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("instances scale")
	wait := fs.Bool("wait", false, "wait until every replica runs")
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") && len(pos) < 2 {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	if len(pos) != 2 {
		return fmt.Errorf("usage: towerctl instances scale NAME REPLICAS [--wait]")
	}
	name := pos[0]
	n, err := strconv.Atoi(pos[1])
	if err != nil {
		return fmt.Errorf("replicas %q: want a whole number from 1 to 9", pos[1])
	}
	body, _ := json.Marshal(map[string]int{"replicas": n})
	var inst instance
	if _, err := cl.api(ctx, http.MethodPost, "/api/instances/"+url.PathEscape(name)+"/scale", bytes.NewReader(body), &inst); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: scaled to %d replicas\n", inst.Name, n)
	for *wait {
		if _, err := cl.api(ctx, http.MethodGet, "/api/instances/"+url.PathEscape(name), nil, &inst); err != nil {
			return err
		}
		running := 0
		for _, a := range inst.Allocations {
			if a.Status == "running" {
				running++
			}
		}
		if running == n && len(inst.Allocations) == n {
			fmt.Fprintf(out, "%s: %s\n", inst.Name, inst.where())
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return nil
}

func instanceGet(ctx context.Context, cl *Client, args []string) (instance, error) {
	var inst instance
	if len(args) != 1 {
		return inst, fmt.Errorf("usage: towerctl instances show NAME")
	}
	_, err := cl.api(ctx, http.MethodGet, "/api/instances/"+url.PathEscape(args[0]), nil, &inst)
	return inst, err
}

func instancesLogs(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("instances logs")
	tail := fs.Int("tail", 200, "lines from the end")
	follow := fs.Bool("f", false, "follow")
	rep := fs.Int("replica", -1, "which replica (default: the first)")
	name, err := parseWithName(fs, args, "towerctl instances logs NAME [--tail N] [--replica N] [-f]")
	if err != nil {
		return err
	}
	if err := cl.authenticate(ctx); err != nil {
		return err
	}
	path := fmt.Sprintf("/api/instances/%s/logs?tail=%d", url.PathEscape(name), *tail)
	if *rep >= 0 {
		path += "&replica=" + strconv.Itoa(*rep)
	}
	if *follow {
		path += "&follow=1"
		cl.http.Timeout = 0
	}
	return cl.stream(ctx, path, out)
}

func instancesFlows(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: towerctl instances flows get NAME | flows versions NAME | flows deploy NAME FILE")
	}
	switch args[0] {
	case "get":
		var f json.RawMessage
		if _, err := cl.api(ctx, http.MethodGet, "/api/instances/"+url.PathEscape(args[1])+"/flows", nil, &f); err != nil {
			return err
		}
		return printJSON(out, f)
	case "versions":
		var resp struct {
			Versions []struct {
				Version      int64     `json:"version"`
				Source       string    `json:"source"`
				DeploymentID string    `json:"deployment_id"`
				Username     string    `json:"username"`
				Time         time.Time `json:"time"`
				SHA256       string    `json:"sha256"`
				Size         int64     `json:"size"`
			} `json:"versions"`
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/instances/"+url.PathEscape(args[1])+"/flows/versions", nil, &resp); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSOURCE\tDEPLOYMENT\tBY\tWHEN\tBYTES\tSHA256")
		for _, v := range resp.Versions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", v.Version, v.Source, orDash(v.DeploymentID), orDash(v.Username),
				v.Time.Local().Format(time.DateTime), v.Size, truncate(v.SHA256, 12))
		}
		return tw.Flush()
	case "deploy":
		if len(args) != 3 {
			return fmt.Errorf("usage: towerctl instances flows deploy NAME FILE")
		}
		doc, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		var res struct {
			Rev   string `json:"rev"`
			Nodes int    `json:"nodes"`
		}
		if _, err := cl.api(ctx, http.MethodPut, "/api/instances/"+url.PathEscape(args[1])+"/flows", bytes.NewReader(doc), &res); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: deployed %d nodes (rev %s)\n", args[1], res.Nodes, res.Rev)
		return nil
	}
	return fmt.Errorf("unknown flows subcommand %q", args[0])
}

// stream copies a plain-text response to out.
func (c *Client) stream(ctx context.Context, path string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("hub %s unreachable: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error APIError `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		e.Error.Status = resp.StatusCode
		return &e.Error
	}
	_, err = io.Copy(out, resp.Body)
	return err
}

// parseWithName parses flags around one positional NAME argument.
func parseWithName(fs interface {
	Parse([]string) error
	Args() []string
}, args []string, usage string) (string, error) {
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", fmt.Errorf("%v; usage: %s", err, usage)
	}
	if name == "" && len(fs.Args()) > 0 {
		name = fs.Args()[0]
	}
	if name == "" {
		return "", fmt.Errorf("usage: %s", usage)
	}
	return name, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return strconv.Itoa(int(time.Since(t).Seconds())) + "s"
}
