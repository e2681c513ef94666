package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"
)

type keyInfo struct {
	ID          string     `json:"kid"`
	CreatedAt   time.Time  `json:"created_at"`
	Current     bool       `json:"current"`
	RetiredAt   *time.Time `json:"retired_at"`
	VerifyUntil *time.Time `json:"verify_until"`
}

// runAuth is towerctl auth keys|rotate-keys (ADMIN only).
func runAuth(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: towerctl auth keys | rotate-keys")
	}
	var res struct {
		Key  keyInfo   `json:"key"`
		Keys []keyInfo `json:"keys"`
	}
	switch args[0] {
	case "keys":
		if _, err := cl.api(ctx, http.MethodGet, "/api/auth/keys", nil, &res); err != nil {
			return err
		}
	case "rotate-keys":
		if _, err := cl.api(ctx, http.MethodPost, "/api/auth/keys/rotate", nil, &res); err != nil {
			return err
		}
		fmt.Fprintf(out, "new signing key %s: new tokens are signed with it; tokens of the old key verify until they expire\n", res.Key.ID)
	default:
		return fmt.Errorf("unknown subcommand %q: want keys or rotate-keys", args[0])
	}
	return printKeys(out, res.Keys)
}

func printKeys(out io.Writer, keys []keyInfo) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tCREATED\tSTATE\tVERIFIES UNTIL")
	for _, k := range keys {
		state, until := "current", "-"
		if !k.Current {
			state = "retired"
		}
		if k.VerifyUntil != nil {
			until = k.VerifyUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.CreatedAt.Format(time.RFC3339), state, until)
	}
	return tw.Flush()
}
