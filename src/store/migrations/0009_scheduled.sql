-- Scheduled access: a request may name when its grant starts. The grant is
-- 'scheduled' until then (its own timer makes it 'active' at that instant)
-- and ends at starts_at + the duration asked for.
ALTER TABLE requests ADD COLUMN starts_at BIGINT;
ALTER TABLE grants ADD COLUMN starts_at BIGINT;
