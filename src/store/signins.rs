//! Sign-ins through the IdP: pending logins (state), one-time codes and
//! sign-in tokens, each keyed by the SHA-256 (hex) of its secret. Taking a
//! flow or a code deletes its row in the same statement, so each works once
//! even with several instances on one store.

use super::{Store, StoreError};
use crate::audit::AuditEntry;
use sqlx::Row;

/// A login under way (GET /auth/login to GET /auth/callback).
#[derive(Debug, Clone)]
pub struct SigninFlow {
    pub state_sha256: String,
    pub browser_sha256: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub cli_port: Option<u16>,
    pub cli_challenge: Option<String>,
    pub expires_at_ms: i64,
}

/// Who the IdP signed in: carried by a one-time code and a sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedIn {
    pub user: String,
    pub groups: Vec<String>,
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub struct SigninCode {
    pub who: SignedIn,
    pub cli_challenge: Option<String>,
    /// The console's code: the hash of the cookie set with it at the
    /// callback (None for a CLI code, bound by its cli_challenge).
    pub browser_sha256: Option<String>,
    pub expires_at_ms: i64,
}

/// A CLI login the person has not confirmed yet (GET /auth/login with
/// cli_port, to the confirmation form's POST).
#[derive(Debug, Clone)]
pub struct SigninConfirm {
    pub confirm_sha256: String,
    pub browser_sha256: String,
    pub cli_port: u16,
    pub cli_challenge: String,
    pub expires_at_ms: i64,
}

/// A live sign-in token's record.
#[derive(Debug, Clone)]
pub struct SigninRecord {
    pub id: String,
    pub who: SignedIn,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

fn groups_of(json: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("sign-in groups: {e}")))
}

fn groups_json(groups: &[String]) -> String {
    serde_json::Value::from(groups.to_vec()).to_string()
}

impl Store {
    pub async fn put_signin_flow(&self, f: &SigninFlow, now: i64) -> Result<(), StoreError> {
        // Expired flows and codes go with each new login: the tables stay
        // as small as the logins of the last few minutes.
        let _gate = self.write_gate().await;
        sqlx::query("DELETE FROM signin_flows WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM signin_codes WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM signin_cli_confirms WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO signin_flows (state_sha256, browser_sha256, nonce, pkce_verifier, cli_port, cli_challenge, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&f.state_sha256)
        .bind(&f.browser_sha256)
        .bind(&f.nonce)
        .bind(&f.pkce_verifier)
        .bind(f.cli_port.map(i64::from))
        .bind(&f.cli_challenge)
        .bind(f.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes and returns the flow of `state_sha256`: a state works once,
    /// whatever the outcome of its callback.
    pub async fn take_signin_flow(
        &self,
        state_sha256: &str,
    ) -> Result<Option<SigninFlow>, StoreError> {
        let _gate = self.write_gate().await;
        let row = sqlx::query(
            "DELETE FROM signin_flows WHERE state_sha256 = $1 RETURNING state_sha256, browser_sha256, nonce, pkce_verifier, cli_port, cli_challenge, expires_at",
        )
        .bind(state_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let port: Option<i64> = r.try_get("cli_port")?;
            Ok(SigninFlow {
                state_sha256: r.try_get("state_sha256")?,
                browser_sha256: r.try_get("browser_sha256")?,
                nonce: r.try_get("nonce")?,
                pkce_verifier: r.try_get("pkce_verifier")?,
                cli_port: port.and_then(|p| u16::try_from(p).ok()),
                cli_challenge: r.try_get("cli_challenge")?,
                expires_at_ms: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn put_signin_code(
        &self,
        code_sha256: &str,
        c: &SigninCode,
    ) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query(
            "INSERT INTO signin_codes (code_sha256, user_name, groups_json, admin, cli_challenge, browser_sha256, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(code_sha256)
        .bind(&c.who.user)
        .bind(groups_json(&c.who.groups))
        .bind(i64::from(c.who.admin))
        .bind(&c.cli_challenge)
        .bind(&c.browser_sha256)
        .bind(c.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes and returns the code: it works once.
    pub async fn take_signin_code(
        &self,
        code_sha256: &str,
    ) -> Result<Option<SigninCode>, StoreError> {
        let _gate = self.write_gate().await;
        let row = sqlx::query(
            "DELETE FROM signin_codes WHERE code_sha256 = $1 RETURNING user_name, groups_json, admin, cli_challenge, browser_sha256, expires_at",
        )
        .bind(code_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let groups: String = r.try_get("groups_json")?;
            let admin: i64 = r.try_get("admin")?;
            Ok(SigninCode {
                who: SignedIn {
                    user: r.try_get("user_name")?,
                    groups: groups_of(&groups)?,
                    admin: admin != 0,
                },
                cli_challenge: r.try_get("cli_challenge")?,
                browser_sha256: r.try_get("browser_sha256")?,
                expires_at_ms: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn put_signin_confirm(&self, c: &SigninConfirm, now: i64) -> Result<(), StoreError> {
        let _gate = self.write_gate().await;
        sqlx::query("DELETE FROM signin_cli_confirms WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO signin_cli_confirms (confirm_sha256, browser_sha256, cli_port, cli_challenge, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.confirm_sha256)
        .bind(&c.browser_sha256)
        .bind(i64::from(c.cli_port))
        .bind(&c.cli_challenge)
        .bind(c.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes and returns the pending confirmation: a confirmation form
    /// works once, whatever the outcome.
    pub async fn take_signin_confirm(
        &self,
        confirm_sha256: &str,
    ) -> Result<Option<SigninConfirm>, StoreError> {
        let _gate = self.write_gate().await;
        let row = sqlx::query(
            "DELETE FROM signin_cli_confirms WHERE confirm_sha256 = $1 RETURNING confirm_sha256, browser_sha256, cli_port, cli_challenge, expires_at",
        )
        .bind(confirm_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let port: i64 = r.try_get("cli_port")?;
            Ok(SigninConfirm {
                confirm_sha256: r.try_get("confirm_sha256")?,
                browser_sha256: r.try_get("browser_sha256")?,
                cli_port: u16::try_from(port)
                    .map_err(|_| StoreError::Corrupt(format!("cli_port {port}")))?,
                cli_challenge: r.try_get("cli_challenge")?,
                expires_at_ms: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Records a sign-in and its audit event together. A locked user gets
    /// none: Conflict.
    pub async fn create_signin(
        &self,
        token_sha256: &str,
        rec: &SigninRecord,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "INSERT INTO signins (token_sha256, id, user_name, groups_json, admin, issued_at, expires_at) SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM user_locks WHERE user_name = $3)",
        )
        .bind(token_sha256)
        .bind(&rec.id)
        .bind(&rec.who.user)
        .bind(groups_json(&rec.who.groups))
        .bind(i64::from(rec.who.admin))
        .bind(rec.issued_at_ms)
        .bind(rec.expires_at_ms)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "user {} is locked",
                rec.who.user
            )));
        }
        self.append(&mut tx, audit, rec.issued_at_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live sign-in of a token hash: not ended, not expired at `now`,
    /// its user not locked (checked here too, so a lock recorded by any
    /// instance stops the token at once).
    pub async fn live_signin(
        &self,
        token_sha256: &str,
        now: i64,
    ) -> Result<Option<SigninRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_name, groups_json, admin, issued_at, expires_at FROM signins s WHERE token_sha256 = $1 AND ended_at IS NULL AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM user_locks l WHERE l.user_name = s.user_name)",
        )
        .bind(token_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let groups: String = r.try_get("groups_json")?;
            let admin: i64 = r.try_get("admin")?;
            Ok(SigninRecord {
                id: r.try_get("id")?,
                who: SignedIn {
                    user: r.try_get("user_name")?,
                    groups: groups_of(&groups)?,
                    admin: admin != 0,
                },
                issued_at_ms: r.try_get("issued_at")?,
                expires_at_ms: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Whether the sign-in of `id` is live at `now`: not ended, not expired
    /// (an SSH certificate naming it still logs in; its user's lock is
    /// checked apart).
    pub async fn signin_live_by_id(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM signins WHERE id = $1 AND ended_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Ends one sign-in (logout) with its audit event; false when it had
    /// already ended.
    pub async fn end_signin(
        &self,
        token_sha256: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "UPDATE signins SET ended_at = $2, end_reason = 'logout' WHERE token_sha256 = $1 AND ended_at IS NULL",
        )
        .bind(token_sha256)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        self.append(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
