-- The session audit writer's batches, by the id the writer gives each one
-- (docs/dev-notes.md): written in the batch's own transaction, so a retry
-- after an error whose COMMIT did succeed (its answer lost on the way)
-- finds its batch there and writes nothing twice. Kept for a day.
CREATE TABLE audit_batches (
    batch_id TEXT PRIMARY KEY,
    written_at BIGINT NOT NULL
);
CREATE INDEX audit_batches_written_at ON audit_batches (written_at);
