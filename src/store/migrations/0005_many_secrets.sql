-- A grant may hold several live connect secrets (one per terminal or tool),
-- each valid until the grant ends or a rotation replaces them all. The table
-- is keyed by the secret's hash, which front ends look up.
CREATE TABLE connect_secrets (
    sha256 TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    scram TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE INDEX connect_secrets_by_grant ON connect_secrets (grant_id);
INSERT INTO connect_secrets (sha256, grant_id, scram, issued_at)
    SELECT sha256, grant_id, scram, issued_at FROM grant_secrets;
DROP TABLE grant_secrets;
