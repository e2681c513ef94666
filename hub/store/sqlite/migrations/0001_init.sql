-- Times are INTEGER microseconds since the Unix epoch, UTC.
-- JSON columns are TEXT, kept byte for byte (the audit hash covers them).

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY, -- gapless from 1, assigned by AppendAudit
    time          INTEGER NOT NULL,
    user_id       TEXT NOT NULL,
    username      TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    details       TEXT,
    ip            TEXT NOT NULL,
    user_agent    TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_user ON audit_log (user_id);
CREATE INDEX audit_log_action ON audit_log (action);
CREATE INDEX audit_log_resource_type ON audit_log (resource_type);

-- The audit log is append-only; the hash chain detects what these miss.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE ai_decisions (
    id          INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    instance_id TEXT NOT NULL,
    edge_id     TEXT NOT NULL,
    flow_name   TEXT NOT NULL,
    model       TEXT NOT NULL,
    prompt      TEXT NOT NULL,
    response    TEXT NOT NULL,
    confidence  REAL NOT NULL,
    tokens_used INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    metadata    TEXT
) STRICT;
CREATE INDEX ai_decisions_time ON ai_decisions (time);
CREATE INDEX ai_decisions_instance ON ai_decisions (instance_id, time);
CREATE INDEX ai_decisions_model ON ai_decisions (model, time);
CREATE INDEX ai_decisions_edge ON ai_decisions (edge_id, time);

CREATE TABLE edge_watermarks (
    edge_id    TEXT NOT NULL,
    stream     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (edge_id, stream)
) STRICT;

CREATE TABLE edge_records (
    edge_id  TEXT NOT NULL,
    stream   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    time     INTEGER NOT NULL,
    checksum INTEGER NOT NULL, -- CRC-32C of payload
    payload  BLOB NOT NULL,
    PRIMARY KEY (edge_id, stream, seq)
) STRICT;

CREATE TABLE vectors (
    edge_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL, -- the seq of its record in stream 'vectors'
    vector_id TEXT NOT NULL,
    dim       INTEGER NOT NULL,
    vector    BLOB NOT NULL,    -- dim little-endian float32s
    metadata  TEXT,
    time      INTEGER NOT NULL,
    PRIMARY KEY (edge_id, seq),
    CHECK (length(vector) = 4 * dim)
) STRICT;

CREATE TABLE checkpoints (
    id          INTEGER PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    step        TEXT NOT NULL,
    state       TEXT,
    time        INTEGER NOT NULL
) STRICT;
CREATE INDEX checkpoints_instance ON checkpoints (instance_id, workflow_id, time);
CREATE INDEX checkpoints_workflow ON checkpoints (workflow_id, time);

CREATE TABLE metric_samples (
    id     INTEGER PRIMARY KEY,
    time   INTEGER NOT NULL,
    source TEXT NOT NULL,
    name   TEXT NOT NULL,
    labels TEXT,
    value  REAL NOT NULL
) STRICT;
CREATE INDEX metric_samples_source_name ON metric_samples (source, name, time);
CREATE INDEX metric_samples_name ON metric_samples (name, time);
CREATE INDEX metric_samples_time ON metric_samples (time);

-- One row, rewritten by Ping to prove the database is writable.
CREATE TABLE store_health (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    pinged_at INTEGER NOT NULL
) STRICT;
INSERT INTO store_health (id, pinged_at) VALUES (1, 0);
