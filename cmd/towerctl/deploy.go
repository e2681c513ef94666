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
	"strings"
	"time"
)

// deploymentView is what GET /api/deployments/:id returns.
type deploymentView struct {
	ID       string `json:"id"`
	Instance string `json:"instance"`
	Phase    string `json:"phase"`
	Status   string `json:"status"`
	Progress int    `json:"progress"`
	Error    string `json:"error"`
	Held     int64  `json:"held"`
	InFlight int64  `json:"in_flight"`
	History  []struct {
		Phase   string    `json:"phase"`
		Status  string    `json:"status"`
		At      time.Time `json:"at"`
		Message string    `json:"message"`
	} `json:"history"`
	Smoke []struct {
		Name     string `json:"name"`
		OK       bool   `json:"ok"`
		Message  string `json:"message"`
		Duration string `json:"duration"`
	} `json:"smoke"`
}

const deployUsage = "towerctl deploy (FILE | --flows-version N) --instance NAME [--wait] [--drain-timeout 5m] [--rollback-window 10m] [--smoke-path /hello [--smoke-expect TEXT]]"

// runDeploy starts a blue-green deployment of a flows file and, with
// --wait, prints each phase as it passes; it fails (exit 1) unless the
// deployment succeeds.
func runDeploy(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("deploy")
	instance := fs.String("instance", "", "logical instance name or id")
	wait := fs.Bool("wait", false, "wait until the deployment ends, printing its phases")
	drain := fs.String("drain-timeout", "", "how long to wait for the drain ack (default 5m)")
	window := fs.String("rollback-window", "", "how long blue is kept for a rollback (default 10m)")
	smokePath := fs.String("smoke-path", "", "a GET path sent to green as a smoke test, e.g. /hello")
	smokeExpect := fs.String("smoke-expect", "", "text the smoke reply must contain")
	version := fs.Int64("flows-version", 0, "redeploy a recorded flows version (towerctl instances flows versions NAME) instead of a file")
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v; usage: %s", err, deployUsage)
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if *instance == "" {
		return fmt.Errorf("--instance is required; usage: %s", deployUsage)
	}
	if (file == "") == (*version == 0) {
		return fmt.Errorf("give a flows FILE or --flows-version N, not both; usage: %s", deployUsage)
	}
	body := map[string]any{"instance": *instance}
	if *version != 0 {
		body["flows_version"] = *version
	} else {
		flows, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		body["flows"] = json.RawMessage(flows)
		if !json.Valid(flows) {
			body["flows"] = string(flows) // let the hub say what is wrong
		}
	}
	if *drain != "" {
		body["drain_timeout"] = *drain
	}
	if *window != "" {
		body["rollback_window"] = *window
	}
	if *smokePath != "" {
		body["smoke"] = map[string]any{"http": map[string]any{"path": *smokePath, "expect_contains": *smokeExpect}}
	}
	b, _ := json.Marshal(body)
	var d deploymentView
	if _, err := cl.api(ctx, http.MethodPost, "/api/deployments", bytes.NewReader(b), &d); err != nil {
		return err
	}
	fmt.Fprintf(out, "deployment %s started\n", d.ID)
	if !*wait {
		return nil
	}
	return watchDeployment(ctx, cl, d.ID, out)
}

// watchDeployment polls a deployment, printing history entries as they
// appear, until it is no longer pending or running.
func watchDeployment(ctx context.Context, cl *Client, id string, out io.Writer) error {
	printed := 0
	for {
		var d deploymentView
		if _, err := cl.api(ctx, http.MethodGet, "/api/deployments/"+url.PathEscape(id), nil, &d); err != nil {
			return err
		}
		for ; printed < len(d.History); printed++ {
			h := d.History[printed]
			line := fmt.Sprintf("%s  %-8s %-11s", h.At.Local().Format("15:04:05.000"), h.Phase, h.Status)
			if h.Message != "" {
				line += " " + h.Message
			}
			fmt.Fprintln(out, line)
		}
		switch d.Status {
		case "pending", "running":
		default:
			for _, s := range d.Smoke {
				mark := "ok"
				if !s.OK {
					mark = "FAILED: " + s.Message
				}
				fmt.Fprintf(out, "smoke %-6s %s (%s)\n", s.Name, mark, s.Duration)
			}
			if d.Status != "succeeded" {
				return fmt.Errorf("deployment %s %s: %s", id, d.Status, d.Error)
			}
			fmt.Fprintf(out, "deployment %s succeeded\n", id)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// runRollback rolls a succeeded deployment back inside its window.
func runRollback(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: towerctl rollback DEPLOYMENT_ID")
	}
	var d deploymentView
	if _, err := cl.api(ctx, http.MethodPost, "/api/deployments/"+url.PathEscape(args[0])+"/rollback", nil, &d); err != nil {
		return err
	}
	fmt.Fprintf(out, "deployment %s %s\n", d.ID, d.Status)
	return nil
}
