package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redforge/controltower/hub/store"
)

// Limits on what Record stores.
const (
	// MaxDetailsBytes bounds the canonical details JSON.
	MaxDetailsBytes = 64 << 10
	// MaxFieldBytes bounds user_id, username, resource_type and
	// resource_id.
	MaxFieldBytes = 256
	// MaxIPBytes and MaxUserAgentBytes bound the request-derived fields,
	// which are truncated (they come from the client).
	MaxIPBytes        = 64
	MaxUserAgentBytes = 512
)

// Redacted replaces the value of a details member whose name (in any
// case) is a redacted key (IsRedactedKey).
const Redacted = "[REDACTED]"

// redactSet holds the details member names whose values Record never
// stores, at any depth: a safety net, since callers must not pass secrets
// at all. It is fixed at build time; IsRedactedKey reads it.
var redactSet = map[string]bool{
	"password": true, "current_password": true, "new_password": true, "old_password": true,
	"secret": true, "client_secret": true, "token": true, "access_token": true, "refresh_token": true,
	"api_token": true, "authorization": true, "cookie": true, "private_key": true,
}

// IsRedactedKey reports whether Record replaces the value of a details
// member named name (in any case) with Redacted.
func IsRedactedKey(name string) bool { return redactSet[strings.ToLower(name)] }

// Store is what the package needs of the data store; store.Store
// satisfies it.
type Store interface {
	AppendAudit(ctx context.Context, rec *store.AuditRecord, hash func(*store.AuditRecord) string) error
	AppendAuditBatch(ctx context.Context, recs []*store.AuditRecord, hash func(*store.AuditRecord) string) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	IterateAudit(ctx context.Context, f store.AuditFilter, fn func(store.AuditRecord) error) error
	AppendAIDecisions(ctx context.Context, ds []store.AIDecision) error
	ListAIDecisions(ctx context.Context, f store.AIDecisionFilter) ([]store.AIDecision, error)
}

// Config tunes a Logger. Zero fields take defaults.
type Config struct {
	// Now is the clock for record times; nil means time.Now.
	Now func() time.Time
	// Logger receives the package's logs; nil discards them.
	Logger *slog.Logger
	// Anchors, when set, holds the chain anchor (see Anchor) in the Raft
	// catalog, so Verify detects a truncated log.
	Anchors Anchors
	// MaxBatch bounds how many concurrent Record calls share one store
	// transaction (group commit); 0 means DefaultMaxBatch, 1 turns group
	// commit off (one transaction per record).
	MaxBatch int
	// BatchTimeout bounds the store transaction of one batch; 0 means
	// DefaultBatchTimeout.
	BatchTimeout time.Duration
}

// Defaults of the group commit (Config.MaxBatch, Config.BatchTimeout).
const (
	DefaultMaxBatch     = 256
	DefaultBatchTimeout = 30 * time.Second
)

// Logger writes and reads the audit log and the AI decision log. It is
// safe for concurrent use.
type Logger struct {
	st      Store
	now     func() time.Time
	log     *slog.Logger
	anchors Anchors

	maxBatch     int
	batchTimeout time.Duration
	mu           sync.Mutex
	queue        []*pending // records waiting for a batch, in arrival order
	flushing     bool       // a flush goroutine is running
}

// pending is one Record call waiting for its batch.
type pending struct {
	rec   store.AuditRecord
	taken bool          // in a batch under way (guarded by Logger.mu)
	err   error         // the batch's outcome, set before done closes
	done  chan struct{} // closed when the batch has committed or failed
}

// New returns a Logger over st. It does no I/O.
func New(st Store, cfg Config) *Logger {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	cfg.MaxBatch = min(cfg.MaxBatch, store.MaxAuditBatch)
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	return &Logger{st: st, now: cfg.Now, log: cfg.Logger.With("component", "audit"), anchors: cfg.Anchors,
		maxBatch: cfg.MaxBatch, batchTimeout: cfg.BatchTimeout}
}

// Entry is one audited action, as the API layer describes it.
type Entry struct {
	UserID       string
	Username     string
	Action       string // one of the action constants, or another ^[A-Z][A-Z0-9_]*$ name
	ResourceType string
	ResourceID   string
	// Details is encoded as JSON (a json.RawMessage or []byte is taken as
	// JSON text); nil and JSON null mean none. Secrets must not be passed;
	// members with a redacted name (IsRedactedKey) are replaced by "[REDACTED]" anyway.
	Details   any
	IP        string
	UserAgent string
	// Time is when it happened; zero means now.
	Time time.Time
}

// Record appends e to the audit hash chain. It stores the details in
// RFC 8785 canonical form (what the hash covers) and truncates an
// over-long or invalid IP or user agent rather than lose the record.
//
// Concurrent calls are group-committed: records that arrive while a
// batch is being written wait and go, in arrival order, into the next
// batch, one store transaction (one fsync) for up to Config.MaxBatch
// records. Record returns only when its record has committed (nil) or its
// batch has failed (the batch's error, for every record in it; none of
// them is written). A call whose ctx ends while its record still waits
// returns ctx's error and its record is not written; once its batch is
// under way it waits for the outcome, so the answer is always true.
//
// Errors: store.ErrInvalid (a *store.InvalidError naming the field) for a
// malformed action, an over-long or non-UTF-8 field, details that are not
// canonicalizable JSON or exceed MaxDetailsBytes; the store's errors.
func (l *Logger) Record(ctx context.Context, e Entry) error {
	rec, err := l.toRecord(e)
	if err != nil {
		return err
	}
	// Refuse here what the store would refuse, so that a bad record never
	// fails the batch of others.
	if err := rec.Validate(); err != nil {
		return err
	}
	if l.maxBatch == 1 {
		if err := l.st.AppendAudit(ctx, &rec, hashFunc); err != nil {
			return fmt.Errorf("audit %s: %w", e.Action, err)
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	p := &pending{rec: rec, done: make(chan struct{})}
	l.mu.Lock()
	l.queue = append(l.queue, p)
	if !l.flushing {
		l.flushing = true
		go l.flush()
	}
	l.mu.Unlock()
	select {
	case <-p.done:
	case <-ctx.Done():
		l.mu.Lock()
		if !p.taken {
			for i, q := range l.queue {
				if q == p {
					copy(l.queue[i:], l.queue[i+1:])
					l.queue[len(l.queue)-1] = nil
					l.queue = l.queue[:len(l.queue)-1]
					break
				}
			}
			l.mu.Unlock()
			return fmt.Errorf("audit %s: %w", e.Action, ctx.Err())
		}
		l.mu.Unlock()
		<-p.done
	}
	if p.err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, p.err)
	}
	return nil
}

// Pending returns how many Record calls wait for a batch to start (not
// those of the batch being written).
func (l *Logger) Pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// flush writes the queue in batches of up to maxBatch records, in
// arrival order, until it is empty; one runs at a time. A batch's
// transaction is bounded by batchTimeout, not by its callers' contexts.
func (l *Logger) flush() {
	for {
		l.mu.Lock()
		n := min(len(l.queue), l.maxBatch)
		if n == 0 {
			l.flushing = false
			l.mu.Unlock()
			return
		}
		batch := make([]*pending, n)
		copy(batch, l.queue)
		rest := copy(l.queue, l.queue[n:])
		clear(l.queue[rest:]) // drop the taken calls from the backing array
		l.queue = l.queue[:rest]
		recs := make([]*store.AuditRecord, n)
		for i, p := range batch {
			p.taken = true
			recs[i] = &p.rec
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), l.batchTimeout)
		err := l.st.AppendAuditBatch(ctx, recs, hashFunc)
		cancel()
		if err != nil {
			l.log.Error("audit batch failed", "records", n, "error", err)
		}
		for _, p := range batch {
			p.err = err
			close(p.done)
		}
	}
}

func (l *Logger) toRecord(e Entry) (store.AuditRecord, error) {
	if !ValidAction(e.Action) {
		return store.AuditRecord{}, &store.InvalidError{Field: "action", Reason: "must match ^[A-Z][A-Z0-9_]{0,63}$"}
	}
	for _, f := range []struct{ name, v string }{
		{"user_id", e.UserID}, {"username", e.Username}, {"resource_type", e.ResourceType}, {"resource_id", e.ResourceID},
	} {
		if err := checkField(f.name, f.v, MaxFieldBytes); err != nil {
			return store.AuditRecord{}, err
		}
	}
	details, err := encodeDetails(e.Details)
	if err != nil {
		return store.AuditRecord{}, err
	}
	t := e.Time
	if t.IsZero() {
		t = l.now()
	}
	return store.AuditRecord{
		Time: store.NormalizeTime(t), UserID: e.UserID, Username: e.Username, Action: e.Action,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, Details: details,
		IP: clean(e.IP, MaxIPBytes), UserAgent: clean(e.UserAgent, MaxUserAgentBytes),
	}, nil
}

// encodeDetails returns the canonical, redacted JSON of d, nil for none.
func encodeDetails(d any) (json.RawMessage, error) {
	var raw []byte
	switch v := d.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, &store.InvalidError{Field: "details", Reason: "cannot be encoded as JSON: " + err.Error()}
		}
		raw = b
	}
	if len(raw) == 0 {
		return nil, nil
	}
	c, err := canonicalize(raw, redactSet)
	if err != nil {
		return nil, &store.InvalidError{Field: "details", Reason: err.Error()}
	}
	if len(c) > MaxDetailsBytes {
		return nil, &store.InvalidError{Field: "details", Reason: fmt.Sprintf("must be at most %d bytes of JSON", MaxDetailsBytes)}
	}
	if string(c) == "null" {
		return nil, nil
	}
	return c, nil
}

// checkField refuses an over-long value, invalid UTF-8 and control
// characters (which would let a value forge lines in a log viewer, and
// which CSV readers do not carry faithfully).
func checkField(name, v string, maxBytes int) error {
	switch {
	case len(v) > maxBytes:
		return &store.InvalidError{Field: name, Reason: fmt.Sprintf("must be at most %d bytes", maxBytes)}
	case !utf8.ValidString(v) || strings.IndexFunc(v, isControl) >= 0:
		return &store.InvalidError{Field: name, Reason: "must be UTF-8 text without control characters"}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// clean makes client-supplied text storable: valid UTF-8, control
// characters replaced by U+FFFD, at most maxBytes (cut at a character
// boundary).
func clean(s string, maxBytes int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
	if len(s) <= maxBytes {
		return s
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Query returns the audit records matching f, newest first. Errors:
// store.ErrInvalid for a bad filter; the store's errors.
func (l *Logger) Query(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	return l.st.ListAudit(ctx, f)
}
