package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/redforge/controltower/hub/audit"
)

// runAudit: export the audit log, or verify an exported file offline.
func runAudit(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: towerctl audit export [--format json|csv] [--out FILE] | audit verify FILE")
	}
	switch args[0] {
	case "verify":
		if len(args) != 2 {
			return fmt.Errorf("usage: towerctl audit verify FILE")
		}
		return auditVerify(args[1], out)
	case "export":
		fs := newFlags("audit export")
		format := fs.String("format", "json", "json or csv")
		file := fs.String("out", "", "write to FILE instead of standard output")
		action := fs.String("action", "", "only this action")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if err := cl.authenticate(ctx); err != nil {
			return err
		}
		q := url.Values{"format": {*format}}
		if *action != "" {
			q.Set("action", *action)
		}
		w := out
		if *file != "" {
			f, err := os.OpenFile(*file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		cl.http.Timeout = 0
		return cl.stream(ctx, "/api/audit/export?"+q.Encode(), w)
	}
	return fmt.Errorf("unknown audit subcommand %q", args[0])
}

// auditVerify re-checks an export's hash chain with no hub; exit 1 when
// the chain is broken.
func auditVerify(path string, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	res, err := audit.VerifyExport(f)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "checked %d records (ids %d..%d), head hash %s\n%s\n", res.Checked, res.FirstID, res.HeadID, res.HeadHash, res.Reason)
	if !res.OK {
		broken := int64(0)
		if res.FirstBroken != nil {
			broken = *res.FirstBroken
		}
		return &exitError{code: 1, msg: fmt.Sprintf("chain broken at record %d", broken)}
	}
	return nil
}
