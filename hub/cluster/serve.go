package cluster

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"

	"github.com/redforge/controltower/hub/catalog"
)

// MinSecretLen is the shortest cluster secret accepted.
const MinSecretLen = 16

// SecretOK compares a presented cluster secret with the configured one in
// constant time. An empty configured secret accepts nothing.
func SecretOK(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Handler serves the leader's end of hub-to-hub calls (PathApply,
// PathReadIndex, PathJoin, PathRemove), each requiring the cluster secret
// in SecretHeader (401 otherwise). hub/api mounts it; tests serve it alone.
// Application outcomes are 200 with a Result (errors by kind); only a
// refused secret or an unreadable request is another status.
func Handler(n *Node, secret string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathApply, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		cmd, err := catalog.DecodeCommand(b)
		if err != nil {
			writeJSON(w, EncodeResult(nil, err))
			return
		}
		writeJSON(w, EncodeResult(n.ApplyLocal(r.Context(), cmd)))
	})
	mux.HandleFunc("POST "+PathReadIndex, func(w http.ResponseWriter, r *http.Request) {
		idx, err := n.ReadIndexLocal(r.Context())
		writeJSON(w, struct {
			Index uint64 `json:"index"`
			Result
		}{idx, EncodeResult(nil, err)})
	})
	mux.HandleFunc("POST "+PathJoin, func(w http.ResponseWriter, r *http.Request) {
		var h HubInfo
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&h); err != nil {
			http.Error(w, "bad join request: "+err.Error(), http.StatusBadRequest)
			return
		}
		voter, err := n.JoinHub(r.Context(), h)
		writeJSON(w, JoinResult{Voter: voter, Result: EncodeResult(nil, err)})
	})
	mux.HandleFunc("POST "+PathRemove, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID string `json:"id"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.ID == "" {
			http.Error(w, "bad remove request: want {\"id\":…}", http.StatusBadRequest)
			return
		}
		writeJSON(w, EncodeResult(nil, n.RemoveHub(r.Context(), req.ID)))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !SecretOK(r.Header.Get(SecretHeader), secret) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":"unauthenticated","message":"hub-to-hub call without the right cluster secret (REDFORGE_CLUSTER_SECRET)"}}`)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
