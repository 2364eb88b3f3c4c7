//! The CLI login's confirmation, with `[auth.oidc] confirm_cli_login` on
//! (off by default: SPEC's CLI flow redirects straight to the IdP).
//! GET /auth/login?cli_port=P&cli_challenge=C then only shows a page asking the person whether they are signing in from the
//! command line on this computer; its form (POST /auth/login) starts the
//! login at the IdP. A page of another site can open that GET in the
//! victim's browser, but cannot submit the form: the form's `confirm` value
//! is bound (in the store) to a SameSite=Strict cookie set with the page,
//! and the page is not readable cross-origin nor frameable. Without this, a
//! live IdP session would send the victim's code to 127.0.0.1:P, where a
//! local attacker on a shared host may listen with their own challenge.

use super::cookies::{bound_to, set_cookie, CONFIRM_COOKIE};
use super::flow::FLOW_TTL_MS;
use super::flow::{check_cli, denied, hash_hex, random_token, FlowError, Identity, LoginStart};
use crate::config::Config;
use crate::store::SigninConfirm;

/// What the confirmation page shows and carries.
pub struct ConfirmPage {
    pub cli_port: u16,
    /// The form's hidden `confirm` value.
    pub confirm: String,
    pub set_cookie: String,
    /// The IdP's authorization endpoint origin: the page's CSP must let the
    /// form's response redirect there (`form-action` covers redirects).
    pub idp_origin: String,
}

impl Identity {
    /// GET /auth/login with cli_port and cli_challenge: a pending
    /// confirmation in the store and the page's cookie; nothing at the IdP.
    pub async fn cli_confirm_page(
        &self,
        cfg: &Config,
        cli_port: u16,
        cli_challenge: String,
    ) -> Result<ConfirmPage, FlowError> {
        let provider = self.provider(cfg)?;
        check_cli(cli_port, &cli_challenge)?;
        let idp_origin = provider
            .authorization_origin()
            .await
            .map_err(|e| FlowError::Idp(e.to_string()))?;
        let confirm = random_token();
        let browser = random_token();
        let now = crate::clock::now_ms();
        self.store
            .put_signin_confirm(
                &SigninConfirm {
                    confirm_sha256: hash_hex(&confirm),
                    browser_sha256: hash_hex(&browser),
                    cli_port,
                    cli_challenge,
                    expires_at_ms: now + FLOW_TTL_MS,
                },
                now,
            )
            .await?;
        Ok(ConfirmPage {
            cli_port,
            confirm,
            set_cookie: confirm_cookie(provider.config(), &browser, FLOW_TTL_MS / 1000),
            idp_origin,
        })
    }

    /// POST /auth/login with the form's `confirm` and the page's cookie: the
    /// CLI login starts at the IdP. The confirmation is spent whatever the
    /// outcome. Returns the start and the cookie clearing the page's.
    pub async fn cli_confirmed(
        &self,
        cfg: &Config,
        confirm: &str,
        cookie_header: Option<&str>,
    ) -> Result<(LoginStart, String), FlowError> {
        let provider = self.provider(cfg)?;
        let pending = self
            .store
            .take_signin_confirm(&hash_hex(confirm))
            .await?
            .ok_or_else(|| {
                denied(
                    "bad_state",
                    "this confirmation is unknown or was already used; run `jitgate login` again",
                )
            })?;
        if pending.expires_at_ms <= crate::clock::now_ms() {
            return Err(denied(
                "bad_state",
                "this confirmation took too long; run `jitgate login` again",
            ));
        }
        if !bound_to(cookie_header, CONFIRM_COOKIE, &pending.browser_sha256) {
            return Err(denied(
                "browser_mismatch",
                "this confirmation was shown in another browser; open the URL `jitgate login` printed here",
            ));
        }
        let clear = confirm_cookie(provider.config(), "", 0);
        let start = self
            .start_login(cfg, Some((pending.cli_port, pending.cli_challenge)))
            .await?;
        Ok((start, clear))
    }
}

fn confirm_cookie(oidc: &crate::config::OidcConfig, value: &str, max_age_s: i64) -> String {
    set_cookie(
        oidc,
        CONFIRM_COOKIE,
        value,
        "/auth/login",
        max_age_s,
        "Strict",
    )
}
