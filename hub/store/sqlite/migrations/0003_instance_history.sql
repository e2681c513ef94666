-- Instance status transitions as the fleet leader observed them, and the
-- flows versions deployed to each logical instance.

CREATE TABLE status_transitions (
    id          INTEGER PRIMARY KEY,
    time        INTEGER NOT NULL,
    instance_id TEXT NOT NULL, -- the logical instance
    row_id      TEXT NOT NULL, -- the catalog row whose status changed
    row_name    TEXT NOT NULL,
    status      TEXT NOT NULL,
    prev_status TEXT NOT NULL,
    message     TEXT NOT NULL
) STRICT;
CREATE INDEX status_transitions_instance ON status_transitions (instance_id, time, id);

CREATE TABLE flows_versions (
    instance_id   TEXT NOT NULL,
    version       INTEGER NOT NULL, -- gapless from 1 per instance
    flows         TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    source        TEXT NOT NULL,    -- put | deployment
    deployment_id TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    username      TEXT NOT NULL,
    time          INTEGER NOT NULL,
    PRIMARY KEY (instance_id, version)
) STRICT;
