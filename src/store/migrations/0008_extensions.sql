-- Extension in place: a request of kind 'extension' names the grant it
-- would extend; approving it moves that grant's expires_at instead of
-- creating a grant. `extended_at` lets instances that missed the LISTEN
-- message find extensions in their periodic re-check.
ALTER TABLE requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'access';
ALTER TABLE requests ADD COLUMN extends_grant TEXT;
ALTER TABLE grants ADD COLUMN extended_at BIGINT;
CREATE INDEX requests_by_extended_grant ON requests (extends_grant, state);
CREATE INDEX grants_by_extension ON grants (extended_at);
