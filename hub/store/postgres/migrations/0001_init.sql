-- Times are timestamptz (microseconds). JSON columns are text, not jsonb:
-- they are kept byte for byte, because the audit hash covers them and both
-- backends must return what was written.

CREATE TABLE audit_log (
    id            bigint PRIMARY KEY, -- gapless from 1, assigned by AppendAudit
    time          timestamptz NOT NULL,
    user_id       text NOT NULL,
    username      text NOT NULL,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    details       text,
    ip            text NOT NULL,
    user_agent    text NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_user ON audit_log (user_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_resource_type ON audit_log (resource_type, id);

-- The audit log is append-only; the hash chain detects what this misses.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE ai_decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        timestamptz NOT NULL,
    instance_id text NOT NULL,
    edge_id     text NOT NULL,
    flow_name   text NOT NULL,
    model       text NOT NULL,
    prompt      text NOT NULL,
    response    text NOT NULL,
    confidence  double precision NOT NULL,
    tokens_used bigint NOT NULL,
    latency_ms  bigint NOT NULL,
    metadata    text
);
CREATE INDEX ai_decisions_time ON ai_decisions (time, id);
CREATE INDEX ai_decisions_instance ON ai_decisions (instance_id, time);
CREATE INDEX ai_decisions_model ON ai_decisions (model, time);
CREATE INDEX ai_decisions_edge ON ai_decisions (edge_id, time);

CREATE TABLE edge_watermarks (
    edge_id    text NOT NULL,
    stream     text NOT NULL,
    seq        bigint NOT NULL,
    count      bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (edge_id, stream)
);

CREATE TABLE edge_records (
    edge_id  text NOT NULL,
    stream   text NOT NULL,
    seq      bigint NOT NULL,
    time     timestamptz NOT NULL,
    checksum bigint NOT NULL, -- CRC-32C of payload
    payload  bytea NOT NULL,
    PRIMARY KEY (edge_id, stream, seq)
);

CREATE TABLE vectors (
    edge_id   text NOT NULL,
    seq       bigint NOT NULL, -- the seq of its record in stream 'vectors'
    vector_id text NOT NULL,
    dim       integer NOT NULL,
    vector    bytea NOT NULL,  -- dim little-endian float32s
    metadata  text,
    time      timestamptz NOT NULL,
    PRIMARY KEY (edge_id, seq),
    CHECK (octet_length(vector) = 4 * dim)
);

CREATE TABLE checkpoints (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id text NOT NULL,
    instance_id text NOT NULL,
    step        text NOT NULL,
    state       text,
    time        timestamptz NOT NULL
);
CREATE INDEX checkpoints_instance ON checkpoints (instance_id, workflow_id, time DESC, id DESC);
CREATE INDEX checkpoints_workflow ON checkpoints (workflow_id, time DESC, id DESC);

CREATE TABLE metric_samples (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time   timestamptz NOT NULL,
    source text NOT NULL,
    name   text NOT NULL,
    labels text,
    value  double precision NOT NULL
);
CREATE INDEX metric_samples_source_name ON metric_samples (source, name, time);
CREATE INDEX metric_samples_name ON metric_samples (name, time);
CREATE INDEX metric_samples_time ON metric_samples (time);

-- One row, rewritten by Ping to prove the database is writable.
CREATE TABLE store_health (
    id        integer PRIMARY KEY CHECK (id = 1),
    pinged_at timestamptz NOT NULL
);
INSERT INTO store_health (id, pinged_at) VALUES (1, now());
