-- Front ends find a grant by the hash of the secret presented.
CREATE UNIQUE INDEX grant_secrets_by_sha256 ON grant_secrets (sha256);
