-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT unix-millisecond
-- times, states as TEXT. Every state change happens in a transaction whose
-- first statement is a conditional UPDATE, so it takes the write lock first.
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    requester TEXT NOT NULL,
    target TEXT NOT NULL,
    policy TEXT NOT NULL,
    reason TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    approvals_required BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    decision_reason TEXT,
    grant_id TEXT
);
CREATE INDEX requests_by_state ON requests (state, created_at);
CREATE INDEX requests_by_requester ON requests (requester, created_at);

CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests (id),
    approver TEXT NOT NULL,
    comment TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE REFERENCES requests (id),
    user_name TEXT NOT NULL,
    target TEXT NOT NULL,
    policy TEXT NOT NULL,
    state TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    ended_by TEXT,
    end_comment TEXT
);
CREATE INDEX grants_by_state ON grants (state, expires_at);
CREATE INDEX grants_by_user ON grants (user_name, state);

CREATE TABLE grant_secrets (
    grant_id TEXT PRIMARY KEY REFERENCES grants (id),
    sha256 TEXT NOT NULL,
    scram TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);

CREATE TABLE user_locks (
    user_name TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    locked_by TEXT NOT NULL,
    locked_at BIGINT NOT NULL
);

-- One row that serialises appends to the hash chain.
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
