package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// HashVersion prefixes every record hash; it names the preimage encoding
// and the hash function (see DESIGN.md). A verifier picks the algorithm
// from the prefix, so a future v2 can coexist with v1 records.
const HashVersion = "v1"

// hashTag is the first field of a v1 preimage.
const hashTag = "redforge-audit-v1"

// TimeLayout is how times appear in the hash preimage and in exports: UTC,
// always six fractional digits (the store keeps microseconds). A fixed
// width makes the preimage easy to rebuild in any language
// (Python: dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")).
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// FormatTime returns t in TimeLayout, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// HashRecord returns the v1 hash of r, "v1:" followed by the lowercase hex
// SHA-256 of its preimage: the netstrings (len ":" bytes ",") of
// "redforge-audit-v1", the decimal id, the time (TimeLayout), user_id,
// username, action, resource_type, resource_id, the RFC 8785 form of
// details ("" when absent), ip, user_agent and prev_hash. r.Hash is not
// part of it. Errors: details that are not canonicalizable JSON.
func HashRecord(r store.AuditRecord) (string, error) {
	details, err := canonicalDetails(r.Details)
	if err != nil {
		return "", fmt.Errorf("audit record %d details: %w", r.ID, err)
	}
	h := sha256.New()
	for _, f := range []string{
		hashTag, strconv.FormatInt(r.ID, 10), FormatTime(r.Time),
		r.UserID, r.Username, r.Action, r.ResourceType, r.ResourceID,
		string(details), r.IP, r.UserAgent, r.PrevHash,
	} {
		h.Write([]byte(strconv.Itoa(len(f))))
		h.Write([]byte{':'})
		h.Write([]byte(f))
		h.Write([]byte{','})
	}
	return HashVersion + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// canonicalDetails is the RFC 8785 form of details, nil when absent.
func canonicalDetails(d []byte) ([]byte, error) {
	if len(d) == 0 {
		return nil, nil
	}
	return Canonicalize(d)
}

// hashFunc is what Logger passes to Store.AppendAudit. Record has already
// canonicalized the details, so it cannot fail; if it did, the store
// refuses the empty hash.
func hashFunc(r *store.AuditRecord) string {
	h, err := HashRecord(*r)
	if err != nil {
		return ""
	}
	return h
}

// knownHashVersion reports whether h is a hash this package can check.
func knownHashVersion(h string) bool {
	v, _, ok := strings.Cut(h, ":")
	return ok && v == HashVersion
}
