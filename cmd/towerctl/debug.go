package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const debugUsage = "towerctl debug pprof NAME [--seconds N] [-o FILE]: NAME is heap, goroutine, allocs, block, mutex, threadcreate, profile (CPU) or trace"

// maxProfileSeconds is the hub's bound on ?seconds (hub/api.MaxProfileSeconds).
const maxProfileSeconds = 120

// runDebug is towerctl debug pprof NAME [--seconds N] [-o FILE]: it saves
// a Go profile of the hub (ADMIN only) for go tool pprof.
func runDebug(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "pprof" {
		return errors.New("usage: " + debugUsage)
	}
	fs := newFlags("debug pprof")
	seconds := fs.Int("seconds", 0, "CPU profile or trace length, or a delta profile over that long (1-120; default: 30 for profile, 1 for trace)")
	file := fs.String("o", "", "file to write the profile to (default NAME.pprof; trace: NAME.out)")
	name, err := parseWithName(fs, args[1:], debugUsage)
	if err != nil {
		return err
	}
	if *seconds < 0 || *seconds > maxProfileSeconds {
		return fmt.Errorf("--seconds %d: must be from 1 to %d", *seconds, maxProfileSeconds)
	}
	if *file == "" {
		*file = name + ".pprof"
		if name == "trace" {
			*file = name + ".out"
		}
	}
	path := "/debug/pprof/" + url.PathEscape(name)
	wait := 0 // how long the hub holds the request open
	switch {
	case *seconds > 0:
		path += "?seconds=" + strconv.Itoa(*seconds)
		wait = *seconds
	case name == "profile":
		wait = 30
	case name == "trace":
		wait = 1
	}
	long := *cl
	long.http = &http.Client{Timeout: cl.http.Timeout + time.Duration(wait)*time.Second, Transport: cl.http.Transport}
	if wait > 0 {
		fmt.Fprintf(out, "profiling the hub for %ds…\n", wait)
	}
	n, err := long.download(ctx, path, *file)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusForbidden:
				return fmt.Errorf("%w: the hub's profiles need the ADMIN role", err)
			case http.StatusNotFound:
				return fmt.Errorf("%w: see %s", err, debugUsage)
			}
		}
		return err
	}
	_, err = fmt.Fprintf(out, "%s profile written to %s (%s); open it with: go tool pprof %s\n", name, *file, bytesText(n), *file)
	return err
}

// download saves the body of an authenticated GET to file, through a
// temporary file beside it: an error leaves no partial file behind. It
// returns the bytes written.
func (c *Client) download(ctx context.Context, path, file string) (int64, error) {
	if err := c.authenticate(ctx); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	cw := &countWriter{w: tmp}
	err = c.stream(ctx, path, cw)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	var ae *APIError
	if errors.As(err, &ae) {
		if ae.Message == "" {
			ae.Message = http.StatusText(ae.Status)
		}
		if ae.Status == http.StatusUnauthorized {
			return 0, fmt.Errorf("%w; log in with towerctl login or set REDFORGE_TOKEN", err)
		}
	}
	if err != nil {
		return 0, err
	}
	return cw.n, os.Rename(tmp.Name(), file) // mode 0600, as CreateTemp made it
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
