package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/backup"
)

// runPITR serves the PostgreSQL point-in-time recovery subcommands. They
// work on the backup destination directly (its credentials from the
// environment, as the hub's), not through a hub: they are what a database
// server runs (archive_command, restore_command) and what an operator runs
// while the hub's database is down.
func runPITR(ctx context.Context, sub string, args []string, out io.Writer) error {
	fs := newFlags("backup " + sub)
	destSpec := fs.String("dest", os.Getenv("REDFORGE_BACKUP_DEST"), "backup destination: a directory or s3://bucket/prefix?endpoint=host:port (env REDFORGE_BACKUP_DEST)")
	to := fs.String("to", "", "pitr: recovery target time, RFC 3339 (e.g. 2026-01-02T03:04:05.123Z)")
	pgdata := fs.String("pgdata", "", "pitr: the new, empty PostgreSQL data directory to prepare")
	restoreCmd := fs.String("restore-command", "", "pitr: restore_command (default: this towerctl's wal-fetch with --dest)")
	dsn := fs.String("pg", "", "basebackup: the PostgreSQL server, postgres://… (a replication-capable role)")
	pgBin := fs.String("pg-bin", "", "basebackup: directory of pg_basebackup (default: PATH)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *destSpec == "" {
		return fmt.Errorf("%s needs --dest (or REDFORGE_BACKUP_DEST)", sub)
	}
	dest, err := backup.ParseDestination(*destSpec, os.Getenv)
	if err != nil {
		return fmt.Errorf("--dest: %w", err)
	}
	objs, err := backup.ObjectsOf(dest)
	if err != nil {
		return err
	}
	switch sub {
	case "wal-push":
		if fs.NArg() != 2 {
			return fmt.Errorf("usage: archive_command = 'towerctl backup wal-push --dest DEST %%p %%f'")
		}
		return backup.WALPush(ctx, objs, fs.Arg(0), fs.Arg(1))
	case "wal-fetch":
		if fs.NArg() != 2 {
			return fmt.Errorf("usage: restore_command = 'towerctl backup wal-fetch --dest DEST %%f %%p'")
		}
		return backup.WALFetch(ctx, objs, fs.Arg(0), fs.Arg(1))
	case "basebackup":
		if *dsn == "" {
			return fmt.Errorf("basebackup needs --pg postgres://…")
		}
		t, err := backup.BaseBackup(ctx, objs, *pgBin, *dsn, time.Now)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "base backup finished at %s, in %s\n", t.Format(time.RFC3339Nano), dest)
		return err
	}
	// pitr
	if *to == "" || *pgdata == "" {
		return fmt.Errorf("usage: towerctl backup pitr --dest DEST --to TIME --pgdata DIR")
	}
	target, err := time.Parse(time.RFC3339Nano, *to)
	if err != nil {
		return fmt.Errorf("--to %q is not an RFC 3339 time such as 2026-01-02T03:04:05Z", *to)
	}
	cmd := *restoreCmd
	if cmd == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd = shellQuote(self) + " backup wal-fetch --dest " + shellQuote(*destSpec) + " %f %p"
	}
	base, err := backup.PreparePITR(ctx, objs, backup.PITROptions{To: target, DataDir: *pgdata, RestoreCommand: cmd})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "prepared %s from the base backup of %s, to recover to %s.\nStart PostgreSQL on it (as its owner): pg_ctl -D %s start; it replays the archived WAL, stops at the target and promotes.\n",
		*pgdata, base.Format(time.RFC3339), target.Format(time.RFC3339Nano), *pgdata)
	return err
}

// shellQuote quotes s for a POSIX shell (PostgreSQL runs restore_command
// through one).
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:=") == "" {
		return s
	}
	return `'` + strings.ReplaceAll(s, `'`, `'"'"'`) + `'`
}
