package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// Riding through a failover of the primary (PostgreSQL with Patroni, a
// multi-host DSN, PgBouncer or HAProxy in front).
//
// Every write method runs its transaction through write, which retries it
// for up to Config.RetryFor when it ended with an error the dialect calls
// Transient (the connection broke, the server is shutting down or is a
// read-only standby, no host would take a connection): the connection is
// dropped from the pool, and the next attempt connects afresh, to the new
// primary. A transaction that failed before its COMMIT was sent did not
// commit, so running it again is safe whatever it does. A COMMIT whose
// answer was lost is ambiguous; for that case every write transaction
// also inserts a random commit token (table store_commits), and after the
// break the store asks the new primary: it inserts the same token with ON
// CONFLICT DO NOTHING, which waits for a transaction still holding it and
// then either finds it (it committed: the write is done, with the values
// that attempt computed) or inserts it itself, fencing the old attempt
// for good (it did not commit: run it again). So a retried write is
// committed exactly once, whatever the write, and audit appends grouped
// into one transaction by their caller compose with it.

// Observer hears of the store's write outages.
type Observer interface {
	// OutageStarted is called once when a write or a ping first fails with
	// a transient error.
	OutageStarted(cause error)
	// OutageEnded is called when a write or ping succeeds again, with how
	// long writes were impossible (from the first failure seen to the
	// first success).
	OutageEnded(took time.Duration, cause error)
}

// commitTokenRetention is how long commit tokens are kept: far longer
// than any retry budget.
const commitTokenRetention = time.Hour

// outage is the state of a write outage.
type outage struct {
	mu    sync.Mutex
	since time.Time
	cause error
}

// retryBackoff bounds the pause between attempts.
const (
	retryBackoffMin = 25 * time.Millisecond
	retryBackoffMax = 500 * time.Millisecond
)

// write runs fn in a transaction on the writer and commits if fn succeeds,
// retrying through a failover (see above) when RetryFor is set.
func (db *DB) write(ctx context.Context, fn func(*Tx) error) error {
	if err := db.open(); err != nil {
		return err
	}
	if db.retryFor <= 0 {
		err := db.writeOnce(ctx, fn, "")
		var amb *ambiguousCommit
		if errors.As(err, &amb) {
			return amb.err
		}
		return err
	}
	start := time.Now()
	backoff := retryBackoffMin
	for {
		token := newToken()
		err := db.writeOnce(ctx, fn, token)
		if err == nil {
			db.recovered()
			db.pruneTokens(ctx)
			return nil
		}
		var amb *ambiguousCommit
		if errors.As(err, &amb) {
			db.outageSeen(amb.err)
			committed, rerr := db.resolve(ctx, token, start)
			if rerr != nil {
				return rerr
			}
			if committed {
				db.recovered()
				return nil
			}
			err = amb.err
		}
		if !db.d.Transient(err) || ctx.Err() != nil {
			return err
		}
		db.outageSeen(err)
		if time.Since(start) >= db.retryFor {
			return &store.UnavailableError{For: time.Since(start), Err: err}
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, retryBackoffMax)
	}
}

// ambiguousCommit is a transient error returned by COMMIT: the
// transaction may or may not have committed.
type ambiguousCommit struct{ err error }

func (e *ambiguousCommit) Error() string { return "commit: " + e.err.Error() }
func (e *ambiguousCommit) Unwrap() error { return e.err }

// writeOnce runs one attempt; token, when set, is inserted into
// store_commits inside the transaction.
func (db *DB) writeOnce(ctx context.Context, fn func(*Tx) error, token string) (err error) {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil && db.d.Transient(err) {
			// A broken connection, or one to a server that is no longer
			// the primary: drop it so the pool connects afresh.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if token != "" {
		if _, err := tx.ExecContext(ctx, db.q("INSERT INTO store_commits (token, at) VALUES (?, ?)"), token, db.t(db.now())); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := fn(&Tx{Tx: tx, Conn: conn, noPrepare: db.noPrepare}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		if db.d.Transient(err) {
			return &ambiguousCommit{err}
		}
		return err
	}
	return nil
}

// resolve tells whether the transaction that inserted token committed,
// retrying until the retry budget that began at start is spent.
func (db *DB) resolve(ctx context.Context, token string, start time.Time) (bool, error) {
	backoff := retryBackoffMin
	for {
		res, err := db.w.ExecContext(ctx, db.q("INSERT INTO store_commits (token, at) VALUES (?, ?) ON CONFLICT (token) DO NOTHING"), token, db.t(db.now()))
		if err == nil {
			n, err := res.RowsAffected()
			if err == nil {
				return n == 0, nil
			}
		}
		if !db.d.Transient(err) || ctx.Err() != nil {
			return false, fmt.Errorf("the connection broke during COMMIT and asking whether it committed failed: %w", err)
		}
		db.outageSeen(err)
		if time.Since(start) >= db.retryFor {
			return false, &store.UnavailableError{For: time.Since(start), OutcomeUnknown: true, Err: err}
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return false, err
		}
		backoff = min(backoff*2, retryBackoffMax)
	}
}

// pruneTokens deletes old commit tokens, at most once per
// commitTokenRetention/10 per store; a failure is left for the next time.
func (db *DB) pruneTokens(ctx context.Context) {
	now := db.now()
	last := db.lastPrune.Load()
	if now.UnixNano()-last < int64(commitTokenRetention/10) || !db.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	_, _ = db.w.ExecContext(ctx, db.q("DELETE FROM store_commits WHERE at < ?"), db.t(now.Add(-commitTokenRetention)))
}

// outageSeen records that writes fail with a transient error.
func (db *DB) outageSeen(cause error) {
	db.out.mu.Lock()
	started := db.out.since.IsZero()
	if started {
		db.out.since = time.Now()
	}
	db.out.cause = cause
	db.out.mu.Unlock()
	if started && db.observer != nil {
		db.observer.OutageStarted(cause)
	}
}

// recovered records that a write (or ping) succeeded.
func (db *DB) recovered() {
	db.out.mu.Lock()
	since, cause := db.out.since, db.out.cause
	db.out.since, db.out.cause = time.Time{}, nil
	db.out.mu.Unlock()
	if !since.IsZero() && db.observer != nil {
		db.observer.OutageEnded(time.Since(since), cause)
	}
}

// Degraded returns, during an outage younger than RetryFor, a
// *store.DegradedError describing it; nil otherwise.
func (db *DB) Degraded() error {
	if db == nil || db.retryFor <= 0 {
		return nil
	}
	db.out.mu.Lock()
	defer db.out.mu.Unlock()
	if db.out.since.IsZero() || time.Since(db.out.since) >= db.retryFor {
		return nil
	}
	return &store.DegradedError{Since: db.out.since, Reason: db.out.cause.Error()}
}

// PingFailover is Ping for a backend that can fail over: a transient
// failure starts (or continues) an outage and, while it is younger than
// RetryFor, is reported as a *store.DegradedError; a success ends it.
func (db *DB) PingFailover(ctx context.Context) error {
	err := db.PingWrite(ctx)
	if err == nil {
		db.recovered()
		return nil
	}
	if db.retryFor > 0 {
		switch {
		case db.d.Transient(err):
			db.outageSeen(err)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			// The ping ran out of time: during an outage (a connect to
			// the dead primary may hang until the deadline) that is the
			// outage going on, reported as it (Degraded is nil when none
			// is in progress, and the timeout is then a plain failure).
		default:
			return err
		}
		if d := db.Degraded(); d != nil {
			return d
		}
	}
	return err
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readRetry runs a read that has returned no row yet, retrying it through
// a failover like write.
func (db *DB) readRetry(ctx context.Context, pool *sql.DB, run func(*sql.DB) error) error {
	start := time.Now()
	backoff := retryBackoffMin
	for {
		err := run(pool)
		if err == nil || db.retryFor <= 0 || !db.d.Transient(err) || ctx.Err() != nil {
			return err
		}
		if time.Since(start) >= db.retryFor {
			return &store.UnavailableError{For: time.Since(start), Err: err}
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, retryBackoffMax)
	}
}
