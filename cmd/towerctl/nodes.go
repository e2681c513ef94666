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
)

const nodesUsage = "towerctl nodes list NAME | install NAME (PACKAGE@VERSION | --tarball FILE) [--wait] | remove NAME PACKAGE [--wait] | policy [set --allow P,… --deny P,…]"

type nodePackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256"`
	Hub     string `json:"hub"`
}

type nodePolicy struct {
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
}

// runNodes manages an instance's node packages: each install or removal
// is a blue-green deployment (--wait prints its phases).
func runNodes(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: %s", nodesUsage)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "list", "ls":
		if len(rest) != 1 {
			return fmt.Errorf("usage: towerctl nodes list NAME")
		}
		var res struct {
			Nodes  []nodePackage `json:"nodes"`
			Policy nodePolicy    `json:"policy"`
		}
		if _, err := cl.api(ctx, http.MethodGet, "/api/instances/"+url.PathEscape(rest[0])+"/nodes", nil, &res); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PACKAGE\tVERSION\tSOURCE")
		for _, p := range res.Nodes {
			src := p.Source
			if p.SHA256 != "" {
				src += " " + p.SHA256[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Version, src)
		}
		return tw.Flush()
	case "install":
		return nodesInstall(ctx, cl, rest, out)
	case "remove", "rm":
		return nodesRemove(ctx, cl, rest, out)
	case "policy":
		return nodesPolicy(ctx, cl, rest, out)
	}
	return fmt.Errorf("unknown nodes command %q; usage: %s", args[0], nodesUsage)
}

// deploymentFlags are the flags of a command that starts a deployment.
type deploymentFlags struct {
	wait          *bool
	drain, window *string
}

func addDeploymentFlags(fs interface {
	Bool(string, bool, string) *bool
	String(string, string, string) *string
}) deploymentFlags {
	return deploymentFlags{
		wait:   fs.Bool("wait", false, "wait until the deployment ends, printing its phases"),
		drain:  fs.String("drain-timeout", "", "how long to wait for the drain ack (default 5m)"),
		window: fs.String("rollback-window", "", "how long blue is kept for a rollback (default 10m)"),
	}
}

func (f deploymentFlags) into(body map[string]any) {
	if *f.drain != "" {
		body["drain_timeout"] = *f.drain
	}
	if *f.window != "" {
		body["rollback_window"] = *f.window
	}
}

// splitArgs separates positional arguments from flags (which may come
// after them).
func splitArgs(args []string) (pos, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && a != "--wait" && a != "-wait" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return pos, flags
}

func nodesInstall(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("nodes install")
	tarball := fs.String("tarball", "", "a package tarball (npm pack) to upload and install, for sites without a registry")
	df := addDeploymentFlags(fs)
	pos, flags := splitArgs(args)
	if err := fs.Parse(flags); err != nil {
		return fmt.Errorf("%v; usage: %s", err, nodesUsage)
	}
	if len(pos) < 1 || (*tarball == "") == (len(pos) != 2) {
		return fmt.Errorf("usage: towerctl nodes install NAME (PACKAGE@VERSION | --tarball FILE) [--wait]")
	}
	body := map[string]any{}
	if *tarball != "" {
		f, err := os.Open(*tarball)
		if err != nil {
			return err
		}
		defer f.Close()
		var up struct {
			Name, Version, SHA256, Warning string
		}
		if err := cl.upload(ctx, "/api/nodes/tarballs", f, "application/gzip", &up); err != nil {
			return err
		}
		fmt.Fprintf(out, "uploaded %s@%s (sha256 %s)\n", up.Name, up.Version, up.SHA256)
		body["name"], body["version"], body["tarball"] = up.Name, up.Version, up.SHA256
	} else {
		spec := pos[1]
		i := strings.LastIndex(spec, "@")
		if i <= 0 {
			return fmt.Errorf("give the package as NAME@VERSION with an exact version, e.g. node-red-contrib-foo@1.2.3")
		}
		body["name"], body["version"] = spec[:i], spec[i+1:]
	}
	df.into(body)
	return startNodesDeployment(ctx, cl, http.MethodPost, "/api/instances/"+url.PathEscape(pos[0])+"/nodes", body, *df.wait, out)
}

func nodesRemove(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	fs := newFlags("nodes remove")
	df := addDeploymentFlags(fs)
	pos, flags := splitArgs(args)
	if err := fs.Parse(flags); err != nil || len(pos) != 2 {
		return fmt.Errorf("usage: towerctl nodes remove NAME PACKAGE [--wait]")
	}
	q := url.Values{"name": {pos[1]}}
	if *df.drain != "" {
		q.Set("drain_timeout", *df.drain)
	}
	if *df.window != "" {
		q.Set("rollback_window", *df.window)
	}
	return startNodesDeployment(ctx, cl, http.MethodDelete, "/api/instances/"+url.PathEscape(pos[0])+"/nodes?"+q.Encode(), nil, *df.wait, out)
}

func startNodesDeployment(ctx context.Context, cl *Client, method, path string, body map[string]any, wait bool, out io.Writer) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	var res struct {
		Deployment deploymentView `json:"deployment"`
		Nodes      []nodePackage  `json:"nodes"`
	}
	if _, err := cl.api(ctx, method, path, rd, &res); err != nil {
		return err
	}
	var set []string
	for _, p := range res.Nodes {
		set = append(set, p.Name+"@"+p.Version)
	}
	fmt.Fprintf(out, "deployment %s started: green gets the node set [%s]\n", res.Deployment.ID, strings.Join(set, ", "))
	if !wait {
		return nil
	}
	return watchDeployment(ctx, cl, res.Deployment.ID, out)
}

func nodesPolicy(ctx context.Context, cl *Client, args []string, out io.Writer) error {
	var p nodePolicy
	if len(args) == 0 {
		if _, err := cl.api(ctx, http.MethodGet, "/api/nodes/policy", nil, &p); err != nil {
			return err
		}
		fmt.Fprintf(out, "allow: %s\ndeny:  %s\n", listOrNone(p.Allow, "(any package)"), listOrNone(p.Deny, "(none)"))
		return nil
	}
	if args[0] != "set" {
		return fmt.Errorf("usage: towerctl nodes policy [set --allow P,… --deny P,…]")
	}
	fs := newFlags("nodes policy set")
	allow := fs.String("allow", "", "comma-separated package patterns instances may install (empty: any)")
	deny := fs.String("deny", "", "comma-separated package patterns refused")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	p = nodePolicy{Allow: splitList(*allow), Deny: splitList(*deny)}
	b, _ := json.Marshal(p)
	if _, err := cl.api(ctx, http.MethodPut, "/api/nodes/policy", bytes.NewReader(b), &p); err != nil {
		return err
	}
	fmt.Fprintf(out, "node policy set: allow %s; deny %s\n", listOrNone(p.Allow, "(any package)"), listOrNone(p.Deny, "(none)"))
	return nil
}

func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func listOrNone(l []string, none string) string {
	if len(l) == 0 {
		return none
	}
	return strings.Join(l, ", ")
}

// upload posts a raw body (a package tarball) with its content type.
func (c *Client) upload(ctx context.Context, path string, body io.Reader, contentType string, out any) error {
	if err := c.authenticate(ctx); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("hub %s unreachable: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error APIError `json:"error"`
		}
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error.Message == "" {
			e.Error.Message = http.StatusText(resp.StatusCode)
		}
		e.Error.Status = resp.StatusCode
		return &e.Error
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("decode %s response: %w", path, err)
		}
	}
	return nil
}
