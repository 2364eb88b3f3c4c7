-- Signed checkpoints of the audit chain (src/audit_anchor.rs). The key that
-- signs them lives outside the store, so rewriting these rows cannot make a
-- rewritten chain verify. `hashes` lists the hashes of events
-- from_seq+1..=seq, space separated.
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    from_seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    instance TEXT NOT NULL,
    head TEXT NOT NULL,
    hashes TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
);
