package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"
)

const snapshotsUsage = "towerctl snapshots list NAME | create NAME --name TEXT [--description TEXT] | show NAME ID | compare NAME ID [--with ID|current] | rollback NAME ID [--wait] | delete NAME ID"

type snapshotView struct {
	ID             string        `json:"id"`
	Name           string        `json:"name"`
	Description    string        `json:"description"`
	FlowNodes      int           `json:"flow_nodes"`
	HasCredentials bool          `json:"has_credentials"`
	Nodes          []nodePackage `json:"nodes"`
	CreatedBy      string        `json:"created_by"`
	CreatedAt      time.Time     `json:"created_at"`
}

// runSnapshots manages an instance's snapshots.
func runSnapshots(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: %s", snapshotsUsage)
	}
	sub := args[0]
	pos, flags := splitArgs(args[1:])
	if len(pos) == 0 {
		return fmt.Errorf("usage: %s", snapshotsUsage)
	}
	base := "/api/instances/" + url.PathEscape(pos[0]) + "/snapshots"
	one := func() (string, error) {
		if len(pos) != 2 {
			return "", fmt.Errorf("usage: towerctl snapshots %s NAME ID", sub)
		}
		return base + "/" + url.PathEscape(pos[1]), nil
	}
	switch sub {
	case "list", "ls":
		var res struct {
			Snapshots []snapshotView `json:"snapshots"`
		}
		if _, err := cl.api(ctx, http.MethodGet, base, nil, &res); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tNODES\tPACKAGES\tCREDENTIALS\tBY\tCREATED")
		for _, s := range res.Snapshots {
			creds := "no"
			if s.HasCredentials {
				creds = "yes (sealed)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.ID, s.Name, s.FlowNodes, len(s.Nodes), creds, orDash(s.CreatedBy), s.CreatedAt.Local().Format(time.DateTime))
		}
		return tw.Flush()
	case "create":
		fs := newFlags("snapshots create")
		name := fs.String("name", "", "the snapshot's name")
		desc := fs.String("description", "", "what it is")
		if err := fs.Parse(flags); err != nil || *name == "" {
			return fmt.Errorf("usage: towerctl snapshots create NAME --name TEXT [--description TEXT]")
		}
		b, _ := json.Marshal(map[string]string{"name": *name, "description": *desc})
		var s snapshotView
		if _, err := cl.api(ctx, http.MethodPost, base, bytes.NewReader(b), &s); err != nil {
			return err
		}
		fmt.Fprintf(out, "snapshot %s %q: %d nodes, %d node packages\n", s.ID, s.Name, s.FlowNodes, len(s.Nodes))
		return nil
	case "show", "get":
		path, err := one()
		if err != nil {
			return err
		}
		var s json.RawMessage
		if _, err := cl.api(ctx, http.MethodGet, path, nil, &s); err != nil {
			return err
		}
		return printJSON(out, s)
	case "delete", "rm":
		path, err := one()
		if err != nil {
			return err
		}
		if _, err := cl.api(ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "snapshot %s deleted\n", pos[1])
		return nil
	case "compare", "diff":
		fs := newFlags("snapshots compare")
		with := fs.String("with", "current", "another snapshot's id, or current (what runs now)")
		path, err := one()
		if err == nil {
			err = fs.Parse(flags)
		}
		if err != nil {
			return err
		}
		var cmp comparison
		if _, err := cl.api(ctx, http.MethodGet, path+"/compare?with="+url.QueryEscape(*with), nil, &cmp); err != nil {
			return err
		}
		printComparison(out, cmp)
		return nil
	case "rollback":
		fs := newFlags("snapshots rollback")
		df := addDeploymentFlags(fs)
		path, err := one()
		if err == nil {
			err = fs.Parse(flags)
		}
		if err != nil {
			return err
		}
		body := map[string]any{}
		df.into(body)
		b, _ := json.Marshal(body)
		var res struct {
			Deployment deploymentView `json:"deployment"`
		}
		if _, err := cl.api(ctx, http.MethodPost, path+"/rollback", bytes.NewReader(b), &res); err != nil {
			return err
		}
		fmt.Fprintf(out, "deployment %s started: rolling back to snapshot %s\n", res.Deployment.ID, pos[1])
		if !*df.wait {
			return nil
		}
		return watchDeployment(ctx, cl, res.Deployment.ID, out)
	}
	return fmt.Errorf("unknown snapshots command %q; usage: %s", sub, snapshotsUsage)
}

type diffNode struct {
	ID     string   `json:"id"`
	Type   string   `json:"type"`
	Name   string   `json:"name"`
	Fields []string `json:"fields"`
}

type comparison struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Flows struct {
		Added, Changed, Removed []diffNode
	} `json:"flows"`
	Settings []struct{ Setting, From, To string } `json:"settings"`
	Nodes    struct {
		Added, Removed, Changed []string
	} `json:"nodes"`
	Summary string `json:"summary"`
}

func printComparison(out io.Writer, c comparison) {
	fmt.Fprintf(out, "snapshot %s → %s: %s\n", c.From, c.To, c.Summary)
	line := func(mark string, n diffNode) {
		name := n.Name
		if name == "" {
			name = "(unnamed)"
		}
		s := fmt.Sprintf("  %s %-16s %-24s %s", mark, n.Type, name, n.ID)
		if len(n.Fields) > 0 {
			s += "  [" + strings.Join(n.Fields, ", ") + "]"
		}
		fmt.Fprintln(out, s)
	}
	for _, n := range c.Flows.Added {
		line("+", n)
	}
	for _, n := range c.Flows.Changed {
		line("~", n)
	}
	for _, n := range c.Flows.Removed {
		line("-", n)
	}
	for _, s := range c.Settings {
		fmt.Fprintf(out, "  ~ setting %s: %q → %q\n", s.Setting, s.From, s.To)
	}
	for _, p := range c.Nodes.Added {
		fmt.Fprintf(out, "  + package %s\n", p)
	}
	for _, p := range c.Nodes.Changed {
		fmt.Fprintf(out, "  ~ package %s\n", p)
	}
	for _, p := range c.Nodes.Removed {
		fmt.Fprintf(out, "  - package %s\n", p)
	}
}
