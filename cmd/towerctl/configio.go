package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
)

const configUsage = "towerctl config export [--out FILE] | import FILE [--dry-run]"

// runConfig is towerctl config export|import: users (password hashes,
// never passwords), roles, API tokens' metadata, regions and placement.
func runConfig(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: " + configUsage)
	}
	switch args[0] {
	case "export":
		fs := newFlags("config export")
		file := fs.String("out", "", "write to FILE (mode 0600: it holds password hashes) instead of standard output")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var doc json.RawMessage
		if _, err := cl.api(ctx, http.MethodGet, "/api/config/export", nil, &doc); err != nil {
			return err
		}
		var b bytes.Buffer
		if err := json.Indent(&b, doc, "", "  "); err != nil {
			return err
		}
		b.WriteByte('\n')
		if *file == "" {
			_, err := out.Write(b.Bytes())
			return err
		}
		if err := os.WriteFile(*file, b.Bytes(), 0o600); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "configuration written to %s\n", *file)
		return err
	case "import":
		fs := newFlags("config import")
		dry := fs.Bool("dry-run", false, "show the changes, make none")
		var file string
		rest := args[1:]
		if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
			file, rest = rest[0], rest[1:]
		}
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if file == "" && fs.NArg() == 1 {
			file = fs.Arg(0)
		}
		if file == "" {
			return errors.New("usage: " + configUsage)
		}
		body, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var resp struct {
			DryRun  bool `json:"dry_run"`
			Changes []struct {
				Kind, Key, Action, Reason string
			} `json:"changes"`
			Counts map[string]int `json:"counts"`
		}
		if _, err := cl.api(ctx, http.MethodPost, fmt.Sprintf("/api/config/import?dry_run=%v", *dry), bytes.NewReader(body), &resp); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tKEY\tACTION\tNOTE")
		for _, c := range resp.Changes {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Kind, c.Key, c.Action, c.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		verb := "applied"
		if resp.DryRun {
			verb = "dry run, nothing applied"
		}
		_, err = fmt.Fprintf(out, "%d to create, %d to update, %d unchanged, %d skipped (%s)\n",
			resp.Counts["create"], resp.Counts["update"], resp.Counts["unchanged"], resp.Counts["skip"], verb)
		return err
	}
	return fmt.Errorf("unknown subcommand %q: want export or import", args[0])
}
