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

// backupTimeout bounds a backup, verification or prune request: they run
// for as long as the archive takes.
const backupTimeout = 2 * time.Hour

type backupObject struct {
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Time      time.Time `json:"time"`
	Encrypted bool      `json:"encrypted"`
}

type backupManifest struct {
	ID           string  `json:"id"`
	CatalogIndex uint64  `json:"catalog_index"`
	Duration     float64 `json:"duration_seconds"`
	Catalog      struct {
		Users       int `json:"users"`
		Instances   int `json:"instances"`
		Deployments int `json:"deployments"`
	} `json:"catalog"`
	Store struct {
		AuditHeadID   int64            `json:"audit_head_id"`
		AuditHeadHash string           `json:"audit_head_hash"`
		Rows          map[string]int64 `json:"rows"`
	} `json:"store"`
	Files []struct {
		Name string `json:"name"`
	} `json:"files"`
}

// runBackup is towerctl backup create|list|verify NAME|prune [--dry-run]|pitr|….
func runBackup(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: towerctl backup create | list | verify NAME | prune [--dry-run] | pitr --to TIME … | basebackup … | wal-push … | wal-fetch …")
	}
	long := *cl
	long.http = &http.Client{Timeout: backupTimeout}
	switch args[0] {
	case "create":
		var resp struct {
			Name     string         `json:"name"`
			Size     int64          `json:"size_bytes"`
			Manifest backupManifest `json:"manifest"`
		}
		if _, err := long.api(ctx, http.MethodPost, "/api/backups", nil, &resp); err != nil {
			return err
		}
		m := resp.Manifest
		_, err := fmt.Fprintf(out, "backup %s: %s in %.1fs; catalog index %d (%d users, %d instances, %d deployments), audit head %d\n",
			resp.Name, bytesText(resp.Size), m.Duration, m.CatalogIndex, m.Catalog.Users, m.Catalog.Instances, m.Catalog.Deployments, m.Store.AuditHeadID)
		return err
	case "list", "ls":
		var resp struct {
			Backups []backupObject `json:"backups"`
			Status  struct {
				LastSuccess time.Time `json:"last_success"`
				LastError   string    `json:"last_error"`
				Failures    int64     `json:"failures"`
			} `json:"status"`
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/backups", nil, &resp); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTAKEN\tSIZE\tENCRYPTED")
		for _, b := range resp.Backups {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", b.Name, b.Time.Format(time.RFC3339), bytesText(b.Size), b.Encrypted)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if resp.Status.LastError != "" {
			fmt.Fprintf(out, "last failure: %s (%d failures)\n", resp.Status.LastError, resp.Status.Failures)
		}
		return nil
	case "verify":
		if len(args) != 2 {
			return errors.New("usage: towerctl backup verify NAME (see towerctl backup list)")
		}
		var res struct {
			Name     string         `json:"name"`
			Checked  int            `json:"files_checked"`
			Restored bool           `json:"restored"`
			Seconds  float64        `json:"seconds"`
			Manifest backupManifest `json:"manifest"`
		}
		if _, err := long.api(ctx, http.MethodPost, "/api/backups/"+url.PathEscape(args[1])+"/verify", nil, &res); err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		_, err := fmt.Fprintf(out, "backup %s OK: %d files checked, restored into a scratch hub that came up and verified its audit chain (head %d) in %.1fs\n",
			res.Name, res.Checked, res.Manifest.Store.AuditHeadID, res.Seconds)
		return err
	case "prune":
		fs := newFlags("backup prune")
		dry := fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var resp struct {
			Keep   []backupObject `json:"keep"`
			Delete []backupObject `json:"delete"`
		}
		if _, err := long.api(ctx, http.MethodPost, fmt.Sprintf("/api/backups/prune?dry_run=%v", *dry), nil, &resp); err != nil {
			return err
		}
		verb := "deleted"
		if *dry {
			verb = "would delete"
		}
		for _, o := range resp.Delete {
			fmt.Fprintf(out, "%s %s\n", verb, o.Name)
		}
		_, err := fmt.Fprintf(out, "%d kept, %d %s\n", len(resp.Keep), len(resp.Delete), verb)
		return err
	case "pitr", "basebackup", "wal-push", "wal-fetch":
		return runPITR(ctx, args[0], args[1:], out)
	}
	return fmt.Errorf("unknown subcommand %q: want create, list, verify, prune, pitr, basebackup, wal-push or wal-fetch", args[0])
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
