-- Commit tokens: every write transaction inserts a random token, so that
-- after a COMMIT whose answer was lost in a failover the store can ask the
-- new primary whether it committed (sqlstore/failover.go). Unlogged would
-- lose them in a crash, exactly when they are needed: a plain table. Rows
-- older than an hour are pruned by the store.
CREATE TABLE IF NOT EXISTS store_commits (
	token text PRIMARY KEY,
	at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS store_commits_at ON store_commits (at);
