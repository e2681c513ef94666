package cluster

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/catalog"
)

// The HTTP paths and header of hub-to-hub cluster calls. They are served by
// hub/api and called by HTTPForwarder; every call carries the cluster
// secret.
const (
	PathApply     = "/api/cluster/apply"
	PathReadIndex = "/api/cluster/read-index"
	PathJoin      = "/api/cluster/join"
	PathRemove    = "/api/cluster/remove"
	SecretHeader  = "X-Redforge-Cluster-Secret"
)

func init() {
	// Every result type a catalog command returns, so a forwarded write's
	// result reaches the follower's caller with its concrete type.
	for _, v := range catalog.ResultTypes() {
		gob.Register(v)
	}
}

// Result is the wire form of an Apply result forwarded between hubs: the
// value gob-encoded with its concrete type, or the error's kind (so
// errors.Is keeps working on the follower) and message.
type Result struct {
	Value   []byte `json:"value,omitempty"`
	ErrKind string `json:"err_kind,omitempty"`
	ErrMsg  string `json:"err_msg,omitempty"`
}

type valueBox struct{ V any }

// errKinds are the sentinels that survive forwarding.
var errKinds = []struct {
	kind string
	err  error
}{
	{"not_found", catalog.ErrNotFound}, {"conflict", catalog.ErrConflict}, {"invalid", catalog.ErrInvalid},
	{"not_leader", ErrNotLeader}, {"no_leader", ErrNoLeader}, {"shutdown", ErrShutdown},
	{"outcome_unknown", ErrOutcomeUnknown}, {"leader_unreachable", ErrLeaderUnreachable},
}

// EncodeResult is the leader's side: it packs Apply's answer. A value that
// cannot be encoded is reported as an error of kind "internal".
func EncodeResult(v any, err error) Result {
	if err != nil {
		r := Result{ErrKind: "internal", ErrMsg: err.Error()}
		for _, k := range errKinds {
			if errors.Is(err, k.err) {
				r.ErrKind = k.kind
				break
			}
		}
		return r
	}
	if v == nil {
		return Result{}
	}
	var buf bytes.Buffer
	if e := gob.NewEncoder(&buf).Encode(valueBox{V: v}); e != nil {
		return Result{ErrKind: "internal", ErrMsg: fmt.Sprintf("encode result %T: %v", v, e)}
	}
	return Result{Value: buf.Bytes()}
}

// Decode is the follower's side: the value with its concrete type, or an
// error that errors.Is the sentinel the leader returned.
func (r Result) Decode() (any, error) {
	if r.ErrKind != "" {
		return nil, &RemoteError{Kind: r.ErrKind, Message: r.ErrMsg}
	}
	if len(r.Value) == 0 {
		return nil, nil
	}
	var box valueBox
	if err := gob.NewDecoder(bytes.NewReader(r.Value)).Decode(&box); err != nil {
		return nil, fmt.Errorf("decode forwarded result: %w", err)
	}
	return box.V, nil
}

// RemoteError is an error returned by the leader to a forwarded call.
type RemoteError struct {
	Kind    string
	Message string
}

func (e *RemoteError) Error() string { return "leader: " + e.Message }

// Unwrap returns the sentinel of the error's kind, so errors.Is works.
func (e *RemoteError) Unwrap() error {
	for _, k := range errKinds {
		if k.kind == e.Kind {
			return k.err
		}
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, catalog.ErrNotFound) }
