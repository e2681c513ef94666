-- Instance status transitions as the fleet leader observed them, and the
-- flows versions deployed to each logical instance.

CREATE TABLE IF NOT EXISTS status_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time        timestamptz NOT NULL,
    instance_id text NOT NULL, -- the logical instance
    row_id      text NOT NULL, -- the catalog row whose status changed
    row_name    text NOT NULL,
    status      text NOT NULL,
    prev_status text NOT NULL,
    message     text NOT NULL
);
CREATE INDEX IF NOT EXISTS status_transitions_instance ON status_transitions (instance_id, time, id);

CREATE TABLE IF NOT EXISTS flows_versions (
    instance_id   text NOT NULL,
    version       bigint NOT NULL, -- gapless from 1 per instance
    flows         text NOT NULL,
    sha256        text NOT NULL,
    size          bigint NOT NULL,
    source        text NOT NULL,   -- put | deployment
    deployment_id text NOT NULL,
    user_id       text NOT NULL,
    username      text NOT NULL,
    time          timestamptz NOT NULL,
    PRIMARY KEY (instance_id, version)
);
