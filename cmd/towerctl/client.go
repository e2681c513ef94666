package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls the hub API.
type Client struct {
	base        *url.URL
	token       string
	http        *http.Client
	sessionFile string
	getenv      func(string) string
	stdin       io.Reader
}

// NewClient checks hubURL and returns a client for it.
func NewClient(hubURL, token string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(hubURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--hub %q is not an http(s)://host:port URL", hubURL)
	}
	return &Client{base: u, token: token, http: &http.Client{Timeout: timeout}}, nil
}

// APIError is the hub's error body.
type APIError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s (HTTP %d", e.Message, e.Status)
	if e.Field != "" {
		s += ", field " + e.Field
	}
	return s + ")"
}

// api sends an authenticated request (see authenticate) and decodes the
// JSON response into out.
func (c *Client) api(ctx context.Context, method, path string, body io.Reader, out any, accept ...int) (int, error) {
	if err := c.authenticate(ctx); err != nil {
		return 0, err
	}
	code, err := c.do(ctx, method, path, body, out, accept...)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		return code, fmt.Errorf("%w; log in with towerctl login or set REDFORGE_TOKEN", err)
	}
	return code, err
}

// do sends a request and decodes a JSON response into out. Statuses listed
// in accept are decoded into out as well instead of becoming errors.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any, accept ...int) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("hub %s unreachable: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode < 300
	for _, s := range accept {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		var e struct {
			Error APIError `json:"error"`
		}
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error.Message == "" {
			e.Error.Message = http.StatusText(resp.StatusCode)
		}
		e.Error.Status = resp.StatusCode
		return resp.StatusCode, &e.Error
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s response: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}
