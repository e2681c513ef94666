package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// ReadIndexer is implemented by a Forwarder that can ask the leader for a
// read index: the leader confirms its leadership with a barrier and
// returns its catalog's applied index. ConsistentRead on a follower uses it.
type ReadIndexer interface {
	ReadIndex(ctx context.Context, leaderID, leaderAddr string) (uint64, error)
}

// MembershipForwarder is implemented by a Forwarder that can send join
// and remove requests to the leader.
type MembershipForwarder interface {
	ForwardJoin(ctx context.Context, leaderID string, h HubInfo) (JoinResult, error)
	ForwardRemove(ctx context.Context, leaderID, id string) error
}

// HTTPForwarder forwards writes, read-index requests and membership
// changes from a follower to the leader's API over HTTP, authenticated by
// the cluster secret. Lookup maps the leader's raft ID to its API base URL
// (Node.HubAPI reads it from the directory).
type HTTPForwarder struct {
	Secret string
	Client *http.Client
	Lookup func(leaderID string) (string, bool)
}

var (
	_ Forwarder           = (*HTTPForwarder)(nil)
	_ ReadIndexer         = (*HTTPForwarder)(nil)
	_ MembershipForwarder = (*HTTPForwarder)(nil)
)

// Forward implements Forwarder. Errors: ErrLeaderUnreachable when the
// request did not reach the leader (nothing was applied);
// ErrOutcomeUnknown when it may have; otherwise the leader's answer.
func (f *HTTPForwarder) Forward(ctx context.Context, leaderID, _ string, cmd catalog.Command) (any, error) {
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	var res Result
	if err := f.call(ctx, leaderID, PathApply, "application/octet-stream", data, &res); err != nil {
		return nil, fmt.Errorf("forward %s: %w", cmd.Type, err)
	}
	return res.Decode()
}

// ReadIndex implements ReadIndexer.
func (f *HTTPForwarder) ReadIndex(ctx context.Context, leaderID, _ string) (uint64, error) {
	var out struct {
		Index uint64 `json:"index"`
		Result
	}
	if err := f.call(ctx, leaderID, PathReadIndex, "application/json", nil, &out); err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	if _, err := out.Result.Decode(); err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	return out.Index, nil
}

// JoinResult is the leader's answer to a join.
type JoinResult struct {
	Voter bool `json:"voter"`
	Result
}

// ForwardJoin implements MembershipForwarder.
func (f *HTTPForwarder) ForwardJoin(ctx context.Context, leaderID string, h HubInfo) (JoinResult, error) {
	body, _ := json.Marshal(h)
	var out JoinResult
	if err := f.call(ctx, leaderID, PathJoin, "application/json", body, &out); err != nil {
		return out, fmt.Errorf("join %s: %w", h.ID, err)
	}
	_, err := out.Result.Decode()
	return out, err
}

// ForwardRemove implements MembershipForwarder.
func (f *HTTPForwarder) ForwardRemove(ctx context.Context, leaderID, id string) error {
	body, _ := json.Marshal(map[string]string{"id": id})
	var out Result
	if err := f.call(ctx, leaderID, PathRemove, "application/json", body, &out); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	_, err := out.Decode()
	return err
}

func (f *HTTPForwarder) call(ctx context.Context, leaderID, path, ctype string, body []byte, out any) error {
	base, ok := f.Lookup(leaderID)
	if !ok {
		return fmt.Errorf("%w: leader %s has no API address in the cluster directory yet", ErrLeaderUnreachable, leaderID)
	}
	return PostCluster(ctx, f.client(), base, f.Secret, path, ctype, body, out)
}

func (f *HTTPForwarder) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return http.DefaultClient
}

// PostCluster POSTs body to base+path with the cluster secret and decodes
// a 200 answer into out. A request that could not be sent (dial failure)
// is ErrLeaderUnreachable; a failure after it may have been received is
// ErrOutcomeUnknown; a 401 is ErrUnauthorized.
func PostCluster(ctx context.Context, c *http.Client, base, secret, path, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLeaderUnreachable, err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(SecretHeader, secret)
	resp, err := c.Do(req)
	if err != nil {
		if tlsRefused(err) {
			return fmt.Errorf("%s%s: %w: %v", base, path, ErrCertRefused, err)
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: %v", ErrLeaderUnreachable, err)
		}
		return fmt.Errorf("%w: %w: %v", ErrLeaderUnreachable, ErrOutcomeUnknown, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w: read answer: %v", ErrLeaderUnreachable, ErrOutcomeUnknown, err)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s%s: %w", base, path, ErrUnauthorized)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s%s answered %d: %.200s", ErrLeaderUnreachable, base, path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s%s: decode answer: %w", base, path, err)
	}
	return nil
}

// tlsRefused reports whether err is a TLS handshake that a certificate
// failed: the peer's certificate is not from the trusted CA, or the peer
// refused this hub's. Retrying cannot help.
func tlsRefused(err error) bool {
	var verr *tls.CertificateVerificationError
	var alert tls.AlertError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	return errors.As(err, &verr) || errors.As(err, &alert) || errors.As(err, &uerr) || errors.As(err, &herr)
}

// retryForward calls f with the current leader until it gives an answer
// other than "no leader / not the leader / unreachable before sending", or
// wait has passed, or ctx ends. It is how a follower rides out an
// election: clients never need to find the leader.
func (n *Node) retryForward(ctx context.Context, wait time.Duration, f func(leaderID, leaderAddr string) error) error {
	deadline := time.Now().Add(wait)
	for {
		r, err := n.running()
		if err != nil {
			return err
		}
		addr, id := r.LeaderWithID()
		if addr != "" && string(id) == n.ID() {
			return n.notLeader(r) // we became the leader: the caller applies locally
		}
		if addr != "" {
			err = f(string(id), string(addr))
			if err == nil || !retryable(err) {
				return err
			}
		} else {
			err = &NotLeaderError{}
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retryable: nothing was applied and a new leader may answer.
func retryable(err error) bool {
	if errors.Is(err, ErrOutcomeUnknown) {
		return false
	}
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrLeaderUnreachable)
}
