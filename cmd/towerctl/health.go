package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"text/tabwriter"
)

type healthResponse struct {
	Status     string   `json:"status"`
	Failed     []string `json:"failed"`
	Degraded   []string `json:"degraded"`
	Version    string   `json:"version"`
	Region     string   `json:"region"`
	NodeID     string   `json:"node_id"`
	Components map[string]struct {
		Status    string  `json:"status"`
		Error     string  `json:"error"`
		LatencyMS float64 `json:"latency_ms"`
	} `json:"components"`
}

// runHealth prints the hub's health; it exits 1 when any component fails.
func runHealth(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q", args[0])
	}
	var h healthResponse
	if _, err := cl.do(ctx, http.MethodGet, "/api/health", nil, &h, http.StatusServiceUnavailable); err != nil {
		return err
	}
	fmt.Fprintf(out, "hub %s  node %s  region %s  version %s  status %s\n", cl.base.Host, h.NodeID, h.Region, h.Version, h.Status)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATUS\tLATENCY\tERROR")
	names := make([]string, 0, len(h.Components))
	for n := range h.Components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := h.Components[n]
		fmt.Fprintf(tw, "%s\t%s\t%.1fms\t%s\n", n, c.Status, c.LatencyMS, c.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if h.Status == "degraded" {
		return &exitError{code: 1, msg: fmt.Sprintf("hub degraded: %v riding through an outage", h.Degraded)}
	}
	if h.Status != "ok" {
		return &exitError{code: 1, msg: fmt.Sprintf("hub unhealthy: %v failed", h.Failed)}
	}
	return nil
}
