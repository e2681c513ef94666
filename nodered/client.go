// Package nodered is a client of the Node-RED Admin HTTP API (GET/POST
// /flows with revisions, /settings, /auth/token, health). It owns the wire
// details of one Node-RED runtime and nothing about fleets: hub/fleet and
// hub/deploy decide what to call and when. Every call has a timeout.
package nodered

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds each Admin API call when the caller's context has
// no earlier deadline.
const DefaultTimeout = 10 * time.Second

// DeployType is Node-RED's Node-RED-Deployment-Type header.
type DeployType string

// Deployment types: full restarts every flow; flows restarts changed flows
// (tabs); nodes restarts only changed nodes; reload re-reads flows.
const (
	DeployFull   DeployType = "full"
	DeployFlows  DeployType = "flows"
	DeployNodes  DeployType = "nodes"
	DeployReload DeployType = "reload"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrConflict: the rev sent with a deploy is not the runtime's current rev.
	ErrConflict = errors.New("nodered: flows changed since they were read (stale rev)")
	// ErrUnauthorized: adminAuth refused the credentials or token.
	ErrUnauthorized = errors.New("nodered: unauthorized")
	// ErrUnavailable: the runtime did not answer or answered 5xx.
	ErrUnavailable = errors.New("nodered: unavailable")
)

// Client talks to one Node-RED runtime. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	http     *http.Client
	username string
	password string
	// Timeout bounds each call; DefaultTimeout when zero.
	Timeout time.Duration

	mu       sync.Mutex
	token    string
	tokenExp time.Time
}

// New returns a client for baseURL (http://host:port[/admin-root]). With a
// username and password it logs in through /auth/token when the runtime
// has adminAuth. It does no I/O.
func New(baseURL, username, password string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("nodered: base URL %q is not http(s)://host:port", baseURL)
	}
	return &Client{base: u, http: &http.Client{}, username: username, password: password}, nil
}

// URL is the runtime's base URL.
func (c *Client) URL() string { return c.base.String() }

// Flows are the runtime's flow configuration and its revision.
type Flows struct {
	Rev   string            `json:"rev"`
	Flows []json.RawMessage `json:"flows"`
}

// GetFlows reads the active flows and their rev.
func (c *Client) GetFlows(ctx context.Context) (Flows, error) {
	var f Flows
	err := c.call(ctx, http.MethodGet, "/flows", nil, map[string]string{"Node-RED-API-Version": "v2"}, &f)
	return f, err
}

// DeployFlows replaces the flows. With a non-empty rev, Node-RED refuses
// the deploy if its flows changed since that rev, and DeployFlows returns
// ErrConflict. It returns the new rev.
func (c *Client) DeployFlows(ctx context.Context, flows []json.RawMessage, rev string, typ DeployType) (string, error) {
	if typ == "" {
		typ = DeployFull
	}
	if flows == nil {
		flows = []json.RawMessage{}
	}
	body := struct {
		Rev   string            `json:"rev,omitempty"`
		Flows []json.RawMessage `json:"flows"`
	}{rev, flows}
	var out struct {
		Rev string `json:"rev"`
	}
	hdr := map[string]string{"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": string(typ)}
	if err := c.call(ctx, http.MethodPost, "/flows", body, hdr, &out); err != nil {
		return "", err
	}
	return out.Rev, nil
}

// NodeSet is one set of node types a runtime has loaded (GET /nodes): a
// module's file. Err says why it did not load.
type NodeSet struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Module  string   `json:"module"`
	Version string   `json:"version"`
	Types   []string `json:"types"`
	Enabled bool     `json:"enabled"`
	// Err is why the set did not load (a string or an error object, as
	// Node-RED has it).
	Err json.RawMessage `json:"err,omitempty"`
}

// Error returns why the set did not load, or "".
func (n NodeSet) Error() string {
	if len(n.Err) == 0 || string(n.Err) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(n.Err, &s) == nil {
		return s
	}
	var o struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	if json.Unmarshal(n.Err, &o) == nil && o.Message != "" {
		return o.Message
	}
	return string(n.Err)
}

// Nodes lists the node sets the runtime has (GET /nodes).
func (c *Client) Nodes(ctx context.Context) ([]NodeSet, error) {
	var sets []NodeSet
	err := c.call(ctx, http.MethodGet, "/nodes", nil, nil, &sets)
	return sets, err
}

// Settings returns the runtime settings the Admin API exposes (version,
// httpNodeRoot, context stores…).
func (c *Client) Settings(ctx context.Context) (map[string]any, error) {
	var s map[string]any
	err := c.call(ctx, http.MethodGet, "/settings", nil, nil, &s)
	return s, err
}

// Version returns the Node-RED version from /settings.
func (c *Client) Version(ctx context.Context) (string, error) {
	s, err := c.Settings(ctx)
	if err != nil {
		return "", err
	}
	v, _ := s["version"].(string)
	return v, nil
}

// Health reports whether the runtime's HTTP admin answers (GET /).
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/", nil, nil, nil)
}

// call performs one Admin API request, logging in first when needed and
// once more if the token was refused.
func (c *Client) call(ctx context.Context, method, path string, in any, hdr map[string]string, out any) error {
	err := c.callOnce(ctx, method, path, in, hdr, out)
	if errors.Is(err, ErrUnauthorized) && c.username != "" {
		c.mu.Lock()
		c.token = ""
		c.mu.Unlock()
		err = c.callOnce(ctx, method, path, in, hdr, out)
	}
	return err
}

func (c *Client) callOnce(ctx context.Context, method, path string, in any, hdr map[string]string, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("nodered: encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return fmt.Errorf("nodered: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c.username != "" {
		tok, err := c.bearer(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", ErrUnavailable, method, path, err)
	}
	defer resp.Body.Close()
	return decode(resp, method, path, out)
}

func decode(resp *http.Response, method, path string, out any) error {
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %s %s: HTTP %d", ErrUnauthorized, method, path, resp.StatusCode)
	case resp.StatusCode == http.StatusConflict:
		return fmt.Errorf("%w: %s %s", ErrConflict, method, path)
	case resp.StatusCode >= 500:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrUnavailable, method, path, resp.StatusCode, bytes.TrimSpace(msg))
	case resp.StatusCode >= 300:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("nodered: %s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("nodered: decode %s %s: %w", method, path, err)
	}
	return nil
}

// bearer returns a valid access token, logging in via /auth/token if the
// cached one is missing or about to expire.
func (c *Client) bearer(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.tokenExp) > time.Minute {
		return c.token, nil
	}
	form := url.Values{
		"client_id":  {"node-red-admin"},
		"grant_type": {"password"},
		"scope":      {"*"},
		"username":   {c.username},
		"password":   {c.password},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/auth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("nodered: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: POST /auth/token: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := decode(resp, http.MethodPost, "/auth/token", &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("%w: /auth/token returned no access_token", ErrUnauthorized)
	}
	c.token = tok.AccessToken
	c.tokenExp = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	return c.token, nil
}
