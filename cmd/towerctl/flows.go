package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

const flowsRestoreUsage = "towerctl flows restore --instance NAME --tag T [--wait] [--drain-timeout 5m] [--rollback-window 10m]"

// runFlows is towerctl flows restore|git: the flows mirror in Git.
func runFlows(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: " + flowsRestoreUsage + " | towerctl flows git")
	}
	switch args[0] {
	case "git":
		var st struct {
			Dir          string `json:"dir"`
			Remote       string `json:"remote"`
			Pending      bool   `json:"push_pending"`
			PushError    string `json:"push_error"`
			PushFailures int    `json:"push_failures"`
			Instances    int    `json:"instances"`
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/flows/git", nil, &st); err != nil {
			return err
		}
		fmt.Fprintf(out, "repository %s, %d instances, remote %s\n", st.Dir, st.Instances, orDash(st.Remote))
		if st.Pending {
			fmt.Fprintf(out, "push pending (%d failures): %s\n", st.PushFailures, orDash(st.PushError))
		}
		return nil
	case "restore":
		fs := newFlags("flows restore")
		instance := fs.String("instance", "", "logical instance name or id")
		tag := fs.String("tag", "", "the Git tag: vN, NAME/vN or deploy/DEPLOYMENT_ID")
		wait := fs.Bool("wait", false, "wait until the deployment ends, printing its phases")
		drain := fs.String("drain-timeout", "", "how long to wait for the drain ack (default 5m)")
		window := fs.String("rollback-window", "", "how long blue is kept for a rollback (default 10m)")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%v; usage: %s", err, flowsRestoreUsage)
		}
		if *instance == "" || *tag == "" {
			return errors.New("--instance and --tag are required; usage: " + flowsRestoreUsage)
		}
		body, _ := json.Marshal(map[string]string{"instance": *instance, "tag": *tag, "drain_timeout": *drain, "rollback_window": *window})
		var resp struct {
			Deployment   deploymentView `json:"deployment"`
			Tag          string         `json:"tag"`
			FlowsVersion int64          `json:"flows_version"`
		}
		if _, err := cl.api(ctx, http.MethodPost, "/api/flows/restore", bytes.NewReader(body), &resp); err != nil {
			return err
		}
		fmt.Fprintf(out, "deployment %s started: %s of %s, recorded as flows version %d\n", resp.Deployment.ID, resp.Tag, *instance, resp.FlowsVersion)
		if !*wait {
			return nil
		}
		return watchDeployment(ctx, cl, resp.Deployment.ID, out)
	}
	return fmt.Errorf("unknown subcommand %q: want restore or git", args[0])
}
