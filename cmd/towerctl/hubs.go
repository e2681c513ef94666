package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"
)

type hubRow struct {
	ID          string    `json:"id"`
	Region      string    `json:"region"`
	API         string    `json:"api"`
	Advertise   string    `json:"advertise"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	Reason      string    `json:"reason"`
	Draining    bool      `json:"draining"`
	Leader      bool      `json:"leader"`
	Allocations int       `json:"allocations"`
	Running     int       `json:"running"`
	ReservedMB  int       `json:"reserved_mb"`
}

// runHubs is towerctl hubs list|drain HUB|undrain HUB.
func runHubs(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: towerctl hubs list | drain HUB | undrain HUB")
	}
	switch args[0] {
	case "list", "ls":
		var resp struct {
			Hubs []hubRow `json:"hubs"`
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/hubs", nil, &resp); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HUB\tREGION\tSTATE\tDRAINING\tLEADER\tREPLICAS\tRUNNING\tRESERVED\tRUNTIMES AT\tSINCE")
		for _, h := range resp.Hubs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%d\t%d\t%dMB\t%s\t%s\n", h.ID, orDash(h.Region), h.State, h.Draining, h.Leader,
				h.Allocations, h.Running, h.ReservedMB, orDash(h.Advertise), since(h.Since))
		}
		return tw.Flush()
	case "drain", "undrain":
		if len(args) != 2 {
			return fmt.Errorf("usage: towerctl hubs %s HUB (see towerctl hubs list)", args[0])
		}
		var h hubRow
		if _, err := cl.api(ctx, http.MethodPost, "/api/hubs/"+url.PathEscape(args[1])+"/"+args[0], nil, &h); err != nil {
			return err
		}
		if args[0] == "drain" {
			_, err := fmt.Fprintf(out, "hub %s draining: its replicas move to other hubs of %s; watch with towerctl hubs list\n", h.ID, orDash(h.Region))
			return err
		}
		_, err := fmt.Fprintf(out, "hub %s takes replicas again\n", h.ID)
		return err
	}
	return fmt.Errorf("unknown subcommand %q: want list, drain or undrain", args[0])
}
