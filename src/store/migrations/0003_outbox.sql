-- Notifications waiting for delivery: one row per (event, receiver), so each
-- receiver retries on its own schedule. A row is written in the transaction
-- of the state change it reports and deleted once delivered or given up.
-- A worker owns a row while lease_until is in the future; claiming is a
-- conditional UPDATE, so instances sharing a store never deliver one row
-- twice at the same time.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    receiver TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    last_error TEXT,
    lease_owner TEXT,
    lease_until BIGINT
);
-- The same event is queued once per receiver even when several instances
-- raise it (grant.expiring comes from every instance's timers).
CREATE UNIQUE INDEX outbox_once ON outbox (event_id, receiver);
CREATE INDEX outbox_due ON outbox (receiver, next_at);
