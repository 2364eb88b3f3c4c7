//! The sign-in flows: start a login (GET /auth/login), finish it at the
//! callback (GET /auth/callback) with a one-time code, trade the code for a
//! sign-in token (POST /auth/exchange), check a presented sign-in token, end
//! it (logout). State lives in the store, so any instance behind the
//! redirect_url can finish a login another started (docs/identity.md).

use super::cookies::{bound_to, set_cookie, EXCHANGE_COOKIE, STATE_COOKIE};
use super::provider::{Provider, ProviderError};
use super::rate::SourceBudget;
use crate::audit::AuditEntry;
use crate::config::{valid_name, Config, OidcConfig};
use crate::grants::{Caller, Via};
use crate::metrics::Metrics;
use crate::store::{SignedIn, SigninCode, SigninFlow, SigninRecord, Store, StoreError};
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// A login must come back from the IdP within this long.
pub const FLOW_TTL_MS: i64 = 10 * 60 * 1000;
/// A one-time code from the callback lives this long (SPEC: 60 s).
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// Sign-in tokens carry this prefix (SPEC).
pub const TOKEN_PREFIX: &str = "jgs_";

/// Why a sign-in step failed. `Denied` and `BadRequest` are the user's or
/// an attacker's (4xx, counted `denied`); `Unavailable` and `Idp` are ours or
/// the IdP's (5xx, counted `error`).
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("sign-in is not configured ([auth.oidc] is absent)")]
    NotConfigured,
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Denied {
        reason: &'static str,
        message: String,
    },
    #[error("too many sign-in requests from this address; wait a minute")]
    RateLimited,
    #[error("the identity provider failed: {0}")]
    Idp(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        FlowError::Unavailable(e.to_string())
    }
}

pub(super) fn denied(reason: &'static str, message: impl Into<String>) -> FlowError {
    FlowError::Denied {
        reason,
        message: message.into(),
    }
}

/// Where /auth/login sends the browser, and the cookie binding it.
pub struct LoginStart {
    pub idp_url: String,
    pub set_cookie: String,
}

/// Where /auth/callback sends the browser: the console (`/#code=`) or the
/// CLI's loopback listener; the state cookie cleared and, for the console,
/// the exchange cookie the code is bound to.
pub struct CallbackDone {
    pub location: String,
    pub set_cookies: Vec<String>,
}

pub struct Exchanged {
    pub token: String,
    pub user: String,
    pub expires_at_ms: i64,
}

pub struct Identity {
    pub(super) store: Store,
    metrics: Arc<Metrics>,
    budget: SourceBudget,
    /// The provider of the running `[auth.oidc]`, rebuilt when a reload
    /// changes it (its discovery cache goes with it).
    provider: Mutex<Option<(OidcConfig, Arc<Provider>)>>,
}

pub(super) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(super) fn hash_hex(s: &str) -> String {
    crate::secrets::sha256_hex(s)
}

fn b64url_sha256(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::secrets::sha256(s.as_bytes()))
}

/// A PKCE-style value: 43 to 128 characters of [A-Za-z0-9-._~].
pub(super) fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Identity {
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Identity {
        Identity {
            store,
            metrics,
            budget: SourceBudget::default(),
            provider: Mutex::new(None),
        }
    }

    /// Spends one unit of the source's budget for /auth/*.
    pub fn admit(&self, ip: IpAddr) -> Result<(), FlowError> {
        if self.budget.spend(ip) {
            Ok(())
        } else {
            Err(FlowError::RateLimited)
        }
    }

    pub(super) fn provider(&self, cfg: &Config) -> Result<Arc<Provider>, FlowError> {
        let oidc = cfg.oidc.as_ref().ok_or(FlowError::NotConfigured)?;
        let mut slot = self
            .provider
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((c, p)) = slot.as_ref() {
            if c == oidc {
                return Ok(p.clone());
            }
        }
        let p = Arc::new(Provider::new(oidc.clone()).map_err(|e| FlowError::Idp(e.to_string()))?);
        *slot = Some((oidc.clone(), p.clone()));
        Ok(p)
    }

    /// Counts and audits a failed step; returns the error for the caller.
    pub fn failed(&self, e: FlowError, user: &str) -> FlowError {
        let (result, reason) = match &e {
            FlowError::Denied { reason, .. } => ("denied", *reason),
            FlowError::BadRequest(_) => ("denied", "bad_request"),
            FlowError::RateLimited => ("denied", "rate_limited"),
            FlowError::NotConfigured => return e,
            FlowError::Idp(_) => ("error", "idp_error"),
            FlowError::Unavailable(_) => ("error", "store_unavailable"),
        };
        self.metrics.signins.with_label_values(&[result]).inc();
        if !matches!(e, FlowError::RateLimited | FlowError::Unavailable(_)) {
            let entry = AuditEntry::new(
                if user.is_empty() { "-" } else { user },
                "auth.failed",
                if user.is_empty() { "signin" } else { user },
                json!({"via": "oidc", "reason": reason, "message": e.to_string()}),
            );
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(err) = store.audit(&entry).await {
                    tracing::warn!(error = %err, "auth.failed not written");
                }
            });
        }
        tracing::info!(reason, error = %e, "sign-in refused");
        e
    }

    /// GET /auth/login[?cli_port=PORT&cli_challenge=C], straight to the
    /// IdP: the console's login, and the CLI's unless `confirm_cli_login`
    /// is on (then the CLI's starts only from its confirmation form,
    /// `cli_confirmed`, never from a GET another site can trigger).
    pub async fn login(
        &self,
        cfg: &Config,
        cli: Option<(u16, String)>,
    ) -> Result<LoginStart, FlowError> {
        self.start_login(cfg, cli).await
    }

    /// A new login at the IdP, its state in the store and the state cookie.
    pub(super) async fn start_login(
        &self,
        cfg: &Config,
        cli: Option<(u16, String)>,
    ) -> Result<LoginStart, FlowError> {
        let provider = self.provider(cfg)?;
        if let Some((port, challenge)) = &cli {
            check_cli(*port, challenge)?;
        }
        let started = provider
            .start()
            .await
            .map_err(|e| FlowError::Idp(e.to_string()))?;
        let browser = random_token();
        let now = crate::clock::now_ms();
        let flow = SigninFlow {
            state_sha256: hash_hex(&started.state),
            browser_sha256: hash_hex(&browser),
            nonce: started.nonce,
            pkce_verifier: started.pkce_verifier,
            cli_port: cli.as_ref().map(|c| c.0),
            cli_challenge: cli.map(|c| c.1),
            expires_at_ms: now + FLOW_TTL_MS,
        };
        self.store.put_signin_flow(&flow, now).await?;
        Ok(LoginStart {
            idp_url: started.url,
            set_cookie: state_cookie(provider.config(), &browser, FLOW_TTL_MS / 1000),
        })
    }

    /// GET /auth/callback?code=&state=, with the browser's Cookie header.
    pub async fn callback(
        &self,
        cfg: &Config,
        params: &[(String, String)],
        cookie_header: Option<&str>,
    ) -> Result<CallbackDone, FlowError> {
        let provider = self.provider(cfg)?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let state = get("state").ok_or_else(|| denied("bad_state", "the sign-in has no state"))?;
        // The state is spent whatever happens next: a replay finds nothing.
        let flow = self
            .store
            .take_signin_flow(&hash_hex(state))
            .await?
            .ok_or_else(|| {
                denied(
                    "bad_state",
                    "this sign-in is unknown or was already used; start again",
                )
            })?;
        if flow.expires_at_ms <= crate::clock::now_ms() {
            return Err(denied(
                "bad_state",
                "this sign-in took too long; start again",
            ));
        }
        if !bound_to(cookie_header, STATE_COOKIE, &flow.browser_sha256) {
            return Err(denied(
                "browser_mismatch",
                "this sign-in was started in another browser; start it again here",
            ));
        }
        if let Some(err) = get("error") {
            return Err(denied(
                "idp_refused",
                format!(
                    "the identity provider refused the sign-in: {}",
                    crate::text::escape(err)
                ),
            ));
        }
        let code = get("code").ok_or_else(|| denied("no_code", "the IdP sent no code"))?;
        let claims = provider
            .finish(code, &flow.pkce_verifier, &flow.nonce)
            .await
            .map_err(|e| match e {
                ProviderError::IdToken(m) => {
                    denied("bad_id_token", format!("the ID token was refused: {m}"))
                }
                ProviderError::Token(m) => {
                    denied("code_refused", format!("the IdP refused the code: {m}"))
                }
                other => FlowError::Idp(other.to_string()),
            })?;
        let who = self.who(cfg, provider.config(), claims)?;
        let code = random_token();
        // The console's code is bound to this browser by a cookie only the
        // exchange reads (login CSRF: a victim handed `/#code=` of the
        // attacker's sign-in has no such cookie); the CLI's by its challenge.
        let browser = flow.cli_port.is_none().then(random_token);
        self.store
            .put_signin_code(
                &hash_hex(&code),
                &SigninCode {
                    who,
                    cli_challenge: flow.cli_challenge.clone(),
                    browser_sha256: browser.as_deref().map(hash_hex),
                    expires_at_ms: crate::clock::now_ms() + CODE_TTL_MS,
                },
            )
            .await?;
        let mut set_cookies = vec![state_cookie(provider.config(), "", 0)];
        let location = match flow.cli_port {
            Some(port) => format!("http://127.0.0.1:{port}/callback?code={code}"),
            None => format!("/#code={code}"),
        };
        if let Some(b) = &browser {
            set_cookies.push(exchange_cookie(provider.config(), b, CODE_TTL_MS / 1000));
        }
        Ok(CallbackDone {
            location,
            set_cookies,
        })
    }

    /// The jitgate identity of the verified claims, or the refusal.
    fn who(
        &self,
        cfg: &Config,
        oidc: &OidcConfig,
        claims: super::provider::Claims,
    ) -> Result<SignedIn, FlowError> {
        let user = claims.username.ok_or_else(|| {
            denied(
                "no_username",
                format!("the ID token has no {} claim", oidc.username_claim),
            )
        })?;
        if !valid_name(&user) {
            return Err(denied(
                "bad_username",
                format!(
                    "the user name {} (claim {}) is not a valid jitgate name: names match [a-z0-9][a-z0-9._-]{{0,62}}; ask your administrator",
                    crate::text::escape(&user),
                    oidc.username_claim
                ),
            ));
        }
        // IdP groups that are valid names, then the [groups] that list the user.
        let mut groups: Vec<String> = claims
            .groups
            .into_iter()
            .filter(|g| valid_name(g))
            .take(256)
            .collect();
        for (g, members) in &cfg.groups {
            if members.contains(&user) && !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        groups.sort();
        groups.dedup();
        // Admin only through the IdP's own groups, never inherited from a
        // `[[users]]` entry of the same name: a name claim is not always
        // controlled by the IdP (OIDC: `preferred_username` is neither
        // unique nor stable), and a static admin token's name must not be
        // a way into admin rights through SSO.
        let admin = groups.iter().any(|g| oidc.admin_groups.contains(g));
        Ok(SignedIn {
            user,
            groups,
            admin,
        })
    }

    /// POST /auth/exchange {"code", "cli_verifier"}, with the Cookie header
    /// (the console's exchange cookie). The code is spent whatever the
    /// outcome, a refused one too.
    pub async fn exchange(
        &self,
        cfg: &Config,
        code: &str,
        cli_verifier: Option<&str>,
        cookie_header: Option<&str>,
    ) -> Result<Exchanged, FlowError> {
        let provider = self.provider(cfg)?;
        let taken = self
            .store
            .take_signin_code(&hash_hex(code))
            .await?
            .ok_or_else(|| {
                denied(
                    "bad_code",
                    "this code is unknown or was already used; sign in again",
                )
            })?;
        let now = crate::clock::now_ms();
        if taken.expires_at_ms <= now {
            return Err(denied("bad_code", "this code expired; sign in again"));
        }
        match (&taken.cli_challenge, cli_verifier) {
            (Some(challenge), Some(v)) => {
                let ok = crate::secrets::digest_eq(
                    &crate::secrets::sha256(b64url_sha256(v).as_bytes()),
                    &crate::secrets::sha256(challenge.as_bytes()),
                );
                if !ok {
                    return Err(denied(
                        "bad_verifier",
                        "the cli_verifier does not match this sign-in",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(denied("bad_verifier", "this code needs its cli_verifier"));
            }
            (None, Some(_)) => {
                return Err(denied(
                    "bad_verifier",
                    "this code was not started by the CLI",
                ));
            }
            (None, None) => {
                // A console code: only the browser that finished the login
                // holds its cookie. A code without a binding (none is made
                // so) is refused too.
                let bound = taken
                    .browser_sha256
                    .as_deref()
                    .is_some_and(|b| bound_to(cookie_header, EXCHANGE_COOKIE, b));
                if !bound {
                    return Err(denied(
                        "browser_mismatch",
                        "this code was issued to another browser; sign in again here",
                    ));
                }
            }
        }
        let token = format!("{TOKEN_PREFIX}{}", random_token());
        let ttl = i64::try_from(provider.config().session_ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let rec = SigninRecord {
            id: format!("si_{}", &random_token()[..16]),
            who: taken.who,
            issued_at_ms: now,
            expires_at_ms: now.saturating_add(ttl),
        };
        let entry = AuditEntry::new(
            &rec.who.user,
            "auth.signin",
            &rec.who.user,
            json!({
                "via": "oidc",
                "signin": rec.id,
                "groups": rec.who.groups,
                "admin": rec.who.admin,
                "expires_at": crate::clock::rfc3339(rec.expires_at_ms),
            }),
        );
        match self
            .store
            .create_signin(&hash_hex(&token), &rec, &entry)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(m)) => return Err(denied("locked", m)),
            Err(e) => return Err(e.into()),
        }
        self.metrics.signins.with_label_values(&["ok"]).inc();
        tracing::info!(user = %rec.who.user, "signed in through the IdP");
        Ok(Exchanged {
            token,
            user: rec.who.user,
            expires_at_ms: rec.expires_at_ms,
        })
    }

    /// The caller of a presented `jgs_` token; Ok(None) when it is unknown,
    /// ended, expired or its user locked. A store error is an error: the
    /// caller fails closed.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, FlowError> {
        let now = crate::clock::now_ms();
        Ok(self
            .store
            .live_signin(&hash_hex(token), now)
            .await?
            .map(|r| Caller {
                user: r.who.user,
                admin: r.who.admin,
                groups: r.who.groups,
                via: Via::Oidc,
                until: Some(r.expires_at_ms),
                signin: Some(r.id),
            }))
    }

    /// POST /v1/auth/logout with a `jgs_` token: ends that sign-in.
    pub async fn logout(&self, caller: &Caller, token: &str) -> Result<bool, FlowError> {
        let entry = AuditEntry::new(
            &caller.user,
            "auth.signout",
            &caller.user,
            json!({"via": "oidc", "reason": "logout"}),
        );
        Ok(self
            .store
            .end_signin(&hash_hex(token), crate::clock::now_ms(), &entry)
            .await?)
    }
}

/// The state cookie (see `cookies`): scoped to the callback.
fn state_cookie(oidc: &OidcConfig, value: &str, max_age_s: i64) -> String {
    set_cookie(
        oidc,
        STATE_COOKIE,
        value,
        "/auth/callback",
        max_age_s,
        "Lax",
    )
}

/// The console code's cookie (see `cookies`): scoped to the exchange.
pub fn exchange_cookie(oidc: &OidcConfig, value: &str, max_age_s: i64) -> String {
    set_cookie(
        oidc,
        EXCHANGE_COOKIE,
        value,
        "/auth/exchange",
        max_age_s,
        "Strict",
    )
}

/// The CLI's loopback port and PKCE-style challenge, checked.
pub(super) fn check_cli(port: u16, challenge: &str) -> Result<(), FlowError> {
    if port == 0 || !pkce_shaped(challenge) {
        return Err(FlowError::BadRequest(
            "cli_port must be 1-65535 and cli_challenge 43-128 characters of [A-Za-z0-9-._~]"
                .into(),
        ));
    }
    Ok(())
}
