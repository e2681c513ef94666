package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/redforge/controltower/internal/apiclient"
)

// runEvents streams the hub's events (GET /api/ws) as JSON lines until
// interrupted, or until --count events have been printed.
func runEvents(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("events")
	types := fs.String("types", "", "comma-separated event types to show (default: all), e.g. instance.status,deployment.phase")
	count := fs.Int("count", 0, "stop after this many events (default: run until interrupted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *count < 0 {
		return fmt.Errorf("--count must be 0 or more, got %d", *count)
	}
	if err := cl.authenticate(ctx); err != nil {
		return err
	}
	var want []string
	for _, t := range strings.Split(*types, ",") {
		if t = strings.TrimSpace(t); t != "" {
			want = append(want, t)
		}
	}
	ev, err := apiclient.Dial(ctx, cl.base.String(), cl.token, nil, want...)
	if err != nil {
		return fmt.Errorf("%w; log in with towerctl login or set REDFORGE_TOKEN if the hub answered 401", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = ev.Close() })
	defer stop()
	defer ev.Close()
	enc := json.NewEncoder(out)
	for n := 0; *count == 0 || n < *count; n++ {
		e, err := ev.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, apiclient.ErrClosed) {
				return nil
			}
			return err
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}
