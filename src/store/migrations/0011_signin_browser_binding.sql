-- Bind the console's one-time code and the CLI's login to the browser
-- (docs/identity.md): the SHA-256 (hex) of a random cookie value set at the
-- console callback, required at the exchange when the code has no
-- cli_challenge; NULL for CLI codes, which the cli_challenge binds.
ALTER TABLE signin_codes ADD COLUMN browser_sha256 TEXT;
-- A CLI login waiting for the person's confirmation: from GET /auth/login
-- (the page with the form) to POST /auth/login (the form, with `confirm`
-- and the browser's cookie), which starts the login at the IdP.
CREATE TABLE signin_cli_confirms (
    confirm_sha256 TEXT PRIMARY KEY,
    browser_sha256 TEXT NOT NULL,
    cli_port BIGINT NOT NULL,
    cli_challenge TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
