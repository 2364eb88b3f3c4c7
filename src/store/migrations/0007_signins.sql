-- Sign-in through the organisation's IdP (docs/identity.md). Every secret is
-- stored as its SHA-256 (hex): the sign-in token, the OIDC `state`, the
-- browser-binding cookie and the one-time code. Rows live in the store, not
-- in one instance's memory, so instances behind one redirect_url share them.
CREATE TABLE signins (
    token_sha256 TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    admin BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT
);
CREATE INDEX signins_user ON signins (user_name);
-- A login under way: from GET /auth/login to GET /auth/callback.
CREATE TABLE signin_flows (
    state_sha256 TEXT PRIMARY KEY,
    browser_sha256 TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    cli_port BIGINT,
    cli_challenge TEXT,
    expires_at BIGINT NOT NULL
);
-- A one-time code from GET /auth/callback, traded by POST /auth/exchange.
CREATE TABLE signin_codes (
    code_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    admin BIGINT NOT NULL,
    cli_challenge TEXT,
    expires_at BIGINT NOT NULL
);
