-- Several instances on one PostgreSQL store. Each live instance heartbeats
-- in `instances`; each owns the rows of the sessions connected to it in
-- `live_sessions`. A row whose instance stopped heartbeating is an orphan
-- that another instance cleans up. `end_*` columns carry a terminate request
-- to the owning instance when its LISTEN notification was missed.
CREATE TABLE instances (
    name TEXT PRIMARY KEY,
    incarnation TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE live_sessions (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    bytes_in BIGINT NOT NULL,
    bytes_out BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    end_requested_at BIGINT,
    end_by TEXT,
    end_comment TEXT
);
CREATE INDEX live_sessions_by_instance ON live_sessions (instance);
CREATE INDEX live_sessions_by_grant ON live_sessions (grant_id);
CREATE INDEX grants_by_end ON grants (ended_at);
