package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/redforge/controltower/hub/store"
)

// Defaults of the replica tunables.
const (
	DefaultMaxReplicaLag        = 30 * time.Second
	DefaultReplicaProbeInterval = time.Second
)

// replica is a read replica and what its last probe measured.
type replica struct {
	name string // host:port, for the metric
	pool *sql.DB

	mu  sync.Mutex
	ok  bool
	lag time.Duration
}

// lagSQL measures how far a standby's replay is behind: 0 when it has
// replayed everything it received (an idle primary is no lag), else the
// age of the last transaction it replayed.
const lagSQL = `SELECT CASE
	WHEN NOT pg_is_in_recovery() THEN 0
	WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_xact_replay_timestamp() IS NULL THEN 0
	WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
	ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()))::float8 END`

// openReplicas opens a pool per replica DSN and starts probing their lag.
func (db *DB) openReplicas(ctx context.Context) error {
	for _, dsn := range db.Replicas {
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return fmt.Errorf("postgres: replica: %w", err)
		}
		cc := cfg.ConnConfig
		if cc.ConnectTimeout == 0 {
			cc.ConnectTimeout = db.ConnectTimeout
		}
		r := &replica{name: Hosts(cc), pool: stdlib.OpenDB(*cc)}
		r.pool.SetMaxOpenConns(int(cfg.MaxConns))
		r.pool.SetMaxIdleConns(int(cfg.MaxConns))
		db.replicas = append(db.replicas, r)
	}
	if len(db.replicas) == 0 {
		return nil
	}
	db.stopProbe = make(chan struct{})
	db.probeDone = make(chan struct{})
	db.probe(ctx)
	go func() {
		defer close(db.probeDone)
		t := time.NewTicker(db.ReplicaProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-db.stopProbe:
				return
			case <-t.C:
				db.probe(context.Background())
			}
		}
	}()
	return nil
}

// probe measures every replica's lag once.
func (db *DB) probe(ctx context.Context) {
	for _, r := range db.replicas {
		pctx, cancel := context.WithTimeout(ctx, db.PingTimeout)
		var secs float64
		err := r.pool.QueryRowContext(pctx, lagSQL).Scan(&secs)
		cancel()
		lag := time.Duration(secs * float64(time.Second))
		r.mu.Lock()
		r.ok, r.lag = err == nil, lag
		r.mu.Unlock()
		if db.OnReplicaLag != nil {
			if err != nil {
				lag = -1
			}
			db.OnReplicaLag(r.name, lag)
		}
	}
}

// readPool is sqlstore's ReadPool: the first replica that answered its
// last probe and lags at most MaxReplicaLag, for a context that allows
// stale reads.
func (db *DB) readPool(ctx context.Context) *sql.DB {
	served, ok := store.StaleReads(ctx)
	if !ok {
		return nil
	}
	for _, r := range db.replicas {
		r.mu.Lock()
		use, lag := r.ok && r.lag <= db.MaxReplicaLag, r.lag
		r.mu.Unlock()
		if use {
			served(lag)
			return r.pool
		}
	}
	return nil
}

// closeReplicas stops the probe and closes the replicas' pools.
func (db *DB) closeReplicas() {
	if db.stopProbe != nil {
		close(db.stopProbe)
		<-db.probeDone
		db.stopProbe = nil
	}
	for _, r := range db.replicas {
		r.pool.Close()
	}
	db.replicas = nil
}
