package nodered

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrNoRoute is returned by Get when the runtime has no such admin route
// (HTTP 404): a runtime without the plugin that serves it.
var ErrNoRoute = errors.New("nodered: no such admin route")

// Get sends GET path to the admin API (logged in like every call) and
// returns the body, at most limit bytes (an error past that). Errors:
// ErrNoRoute for 404, ErrUnauthorized, ErrUnavailable, or a plain error
// for another status.
func (c *Client) Get(ctx context.Context, path string, limit int64) ([]byte, error) {
	body, err := c.getOnce(ctx, path, limit)
	if errors.Is(err, ErrUnauthorized) && c.username != "" {
		c.mu.Lock()
		c.token = ""
		c.mu.Unlock()
		body, err = c.getOnce(ctx, path, limit)
	}
	return body, err
}

func (c *Client) getOnce(ctx context.Context, path string, limit int64) ([]byte, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return nil, fmt.Errorf("nodered: %w", err)
	}
	if c.username != "" {
		tok, err := c.bearer(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrUnavailable, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: GET %s", ErrNoRoute, path)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decode(resp, http.MethodGet, path, nil)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrUnavailable, path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("nodered: GET %s: body larger than %d bytes", path, limit)
	}
	return b, nil
}
