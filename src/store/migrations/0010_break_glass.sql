-- Break-glass: a grant taken at once without an approver carries
-- review = 'pending' until an approver of its policy records a verdict
-- ('justified' or 'unjustified'). NULL for every other grant.
ALTER TABLE grants ADD COLUMN review TEXT;
ALTER TABLE grants ADD COLUMN reviewed_by TEXT;
ALTER TABLE grants ADD COLUMN review_comment TEXT;
ALTER TABLE grants ADD COLUMN reviewed_at BIGINT;
CREATE INDEX grants_by_review ON grants (review);
