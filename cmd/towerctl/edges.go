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

// edge is an edge as GET /api/edges shows it.
type edge struct {
	ID                   string    `json:"id"`
	Name                 string    `json:"name"`
	Region               string    `json:"region"`
	State                string    `json:"state"`
	LastHeartbeat        time.Time `json:"last_heartbeat"`
	DesiredConfigVersion uint64    `json:"desired_config_version"`
	AppliedConfigVersion uint64    `json:"applied_config_version"`
	Streams              map[string]struct {
		Seq   int64 `json:"seq"`
		Count int64 `json:"count"`
	} `json:"streams"`
	Backlog map[string]struct {
		Depth                 int64   `json:"depth"`
		Bytes                 int64   `json:"bytes"`
		OldestUnsyncedSeconds float64 `json:"oldest_unsynced_seconds"`
	} `json:"backlog"`
}

const edgesUsage = "usage: towerctl edges list | show ID | token [--region R] [--ttl D] | config get ID | config set ID FLOWS_FILE [--settings FILE]"

func runEdges(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(edgesUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list", "ls":
		return edgesList(ctx, cl, out)
	case "show", "get":
		if len(rest) != 1 {
			return fmt.Errorf("usage: towerctl edges show ID")
		}
		var e json.RawMessage
		if _, err := cl.api(ctx, http.MethodGet, "/api/edges/"+url.PathEscape(rest[0]), nil, &e); err != nil {
			return err
		}
		return printJSON(out, e)
	case "token":
		return edgesToken(ctx, cl, rest, out)
	case "config":
		return edgesConfig(ctx, cl, rest, out)
	}
	return fmt.Errorf("unknown subcommand %q; %s", sub, edgesUsage)
}

func edgesList(ctx context.Context, cl *Client, out io.Writer) error {
	var resp struct {
		Edges []edge `json:"edges"`
	}
	if _, err := cl.api(ctx, http.MethodGet, "/api/edges", nil, &resp); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tREGION\tSTATE\tHEARTBEAT\tCONFIG\tSYNCED\tBACKLOG\tOLDEST")
	for _, e := range resp.Edges {
		var synced, backlog int64
		var oldest float64
		for _, s := range e.Streams {
			synced += s.Count
		}
		for _, b := range e.Backlog {
			backlog += b.Depth
			oldest = max(oldest, b.OldestUnsyncedSeconds)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%.0fs\n", e.ID, e.Name, orDash(e.Region), e.State, since(e.LastHeartbeat),
			e.AppliedConfigVersion, e.DesiredConfigVersion, synced, backlog, oldest)
	}
	return tw.Flush()
}

// edgesToken creates a one-time enrollment token and prints how to use it.
func edgesToken(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("edges token")
	region := fs.String("region", "", "region the edge enrolls into")
	ttl := fs.Duration("ttl", 0, "how long the token stays usable (default: the hub's, 24h)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return fmt.Errorf("usage: towerctl edges token [--region R] [--ttl D]")
	}
	req := map[string]any{}
	if *region != "" {
		req["region"] = *region
	}
	if *ttl != 0 {
		if *ttl < time.Second {
			return fmt.Errorf("--ttl must be at least 1s")
		}
		req["ttl_seconds"] = int64(*ttl / time.Second)
	}
	body, _ := json.Marshal(req)
	var tok struct {
		Token     string    `json:"token"`
		Region    string    `json:"region"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if _, err := cl.api(ctx, http.MethodPost, "/api/edges/tokens", bytes.NewReader(body), &tok, http.StatusCreated); err != nil {
		return err
	}
	scope := ""
	if tok.Region != "" {
		scope = " for region " + tok.Region
	}
	fmt.Fprintf(out, "%s\n\none-time enrollment token%s, valid until %s; shown only now.\nOn the edge: redforge-edge --hub %s --token %s\n",
		tok.Token, scope, tok.ExpiresAt.Local().Format(time.RFC3339), cl.base.String(), tok.Token)
	return nil
}

func edgesConfig(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) < 2 {
		return errors.New(edgesUsage)
	}
	path := "/api/edges/" + url.PathEscape(args[1]) + "/config"
	switch args[0] {
	case "get":
		var c json.RawMessage
		if _, err := cl.api(ctx, http.MethodGet, path, nil, &c); err != nil {
			return err
		}
		return printJSON(out, c)
	case "set":
		fs := newFlags("edges config set")
		settingsFile := fs.String("settings", "", "JSON file with the edge settings (an object)")
		if len(args) < 3 || strings.HasPrefix(args[2], "-") {
			return fmt.Errorf("usage: towerctl edges config set ID FLOWS_FILE [--settings FILE]")
		}
		if err := fs.Parse(args[3:]); err != nil {
			return fmt.Errorf("%v; usage: towerctl edges config set ID FLOWS_FILE [--settings FILE]", err)
		}
		flows, err := os.ReadFile(args[2])
		if err != nil {
			return err
		}
		req := map[string]json.RawMessage{"flows": flows}
		if *settingsFile != "" {
			if req["settings"], err = os.ReadFile(*settingsFile); err != nil {
				return err
			}
		}
		if !json.Valid(flows) {
			return fmt.Errorf("%s: not valid JSON", args[2])
		}
		if s, ok := req["settings"]; ok && !json.Valid(s) {
			return fmt.Errorf("%s: not valid JSON", *settingsFile)
		}
		body, _ := json.Marshal(req)
		var c struct {
			Version uint64 `json:"version"`
		}
		if _, err := cl.api(ctx, http.MethodPut, path, bytes.NewReader(body), &c); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: desired config version %d stored; the edge applies it at its next heartbeat (see towerctl edges list, CONFIG applied/desired)\n", args[1], c.Version)
		return nil
	}
	return fmt.Errorf("unknown config subcommand %q; %s", args[0], edgesUsage)
}
