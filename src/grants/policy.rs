//! Policy evaluation: who may request what, for how long, and who may act
//! on a request, grant or session. Pure functions of the config, so the rules
//! are testable without a store.

use super::GrantError;
use crate::config::{Config, Policy};
use std::time::Duration;

/// The caller of an API operation, as authenticated by token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub admin: bool,
    /// The groups the IdP gave at sign-in (merged with `[groups]` wherever
    /// membership counts); empty for static tokens.
    pub groups: Vec<String>,
    pub via: Via,
    /// When the sign-in ends, in Unix milliseconds; None for static tokens.
    pub until: Option<i64>,
    /// The sign-in's id (`si_...`, not its token); None for static tokens.
    /// SSH certificates carry it so a login can check the sign-in is live.
    pub signin: Option<String>,
}

impl Caller {
    /// A caller by static token (`[[users]]`), as automation signs in.
    pub fn static_token(user: &str, admin: bool) -> Caller {
        Caller {
            user: user.to_string(),
            admin,
            groups: Vec::new(),
            via: Via::Token,
            until: None,
            signin: None,
        }
    }
}

/// How the caller signed in (`via` in whoami).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A static `[[users]]` token.
    Token,
    /// A `jgs_` sign-in token from the OpenID provider.
    Oidc,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Token => "token",
            Via::Oidc => "oidc",
        }
    }
}

pub const MAX_REASON_LEN: usize = 1000;

/// The policy and duration for a new request, or why it is refused.
pub fn evaluate_request<'c>(
    cfg: &'c Config,
    caller: &Caller,
    target: &str,
    duration: Option<&str>,
    reason: &str,
) -> Result<(&'c Policy, Duration), GrantError> {
    if !cfg.targets.contains_key(target) {
        return Err(GrantError::NotFound(format!("target {target:?}")));
    }
    let user = &caller.user;
    let policy = cfg
        .policy_for_with(user, &caller.groups, target)
        .ok_or_else(|| {
            GrantError::Forbidden(format!(
                "no policy allows {user} to request access to {target}"
            ))
        })?;
    let duration = match duration {
        None => policy.default_duration,
        Some(s) => crate::duration::parse(s).map_err(|e| GrantError::Invalid(e.to_string()))?,
    };
    if duration.is_zero() {
        return Err(GrantError::Invalid(
            "duration must be greater than zero".into(),
        ));
    }
    if duration > policy.max_duration {
        return Err(GrantError::Invalid(format!(
            "duration {} exceeds the maximum of {} allowed by policy {}",
            humantime::format_duration(duration),
            humantime::format_duration(policy.max_duration),
            policy.name
        )));
    }
    if policy.require_reason && reason.trim().is_empty() {
        return Err(GrantError::Invalid(format!(
            "policy {} requires a reason",
            policy.name
        )));
    }
    check_reason(policy, reason)?;
    Ok((policy, duration))
}

/// The reason rules a request and an extension share: its length, and the
/// policy's `reason_pattern`, named in the refusal so the requester can fix
/// the reason (the pattern is config, not a secret).
pub fn check_reason(policy: &Policy, reason: &str) -> Result<(), GrantError> {
    if reason.len() > MAX_REASON_LEN {
        return Err(GrantError::Invalid(format!(
            "reason is longer than {MAX_REASON_LEN} bytes"
        )));
    }
    if let Some(p) = &policy.reason_pattern {
        if !p.matches(reason) {
            return Err(GrantError::Invalid(format!(
                "reason does not match policy {}'s reason_pattern {:?} (e.g. a ticket id)",
                policy.name, p.source
            )));
        }
    }
    Ok(())
}

/// Whether `caller` may approve or deny a request by `requester` under
/// `policy_name`. Self-approval is refused before anything else, so no group
/// membership or admin flag can lead around it.
pub fn check_approver(
    cfg: &Config,
    caller: &Caller,
    requester: &str,
    policy_name: &str,
    verb: &str,
) -> Result<(), GrantError> {
    if caller.user == requester {
        return Err(GrantError::Forbidden(format!(
            "you cannot {verb} your own request"
        )));
    }
    let policy = cfg.policy(policy_name).ok_or_else(|| {
        GrantError::Conflict(format!(
            "policy {policy_name} no longer exists; the request cannot be {verb}d"
        ))
    })?;
    if !cfg.is_member_with(&caller.user, &caller.groups, &policy.approvers) {
        return Err(GrantError::Forbidden(format!(
            "{} is not an approver under policy {policy_name}",
            caller.user
        )));
    }
    Ok(())
}

/// Approvers of the policy see and act on what it governs.
pub fn is_policy_approver(cfg: &Config, caller: &Caller, policy_name: &str) -> bool {
    cfg.policy(policy_name)
        .is_some_and(|p| cfg.is_member_with(&caller.user, &caller.groups, &p.approvers))
}

/// Owner, approver of the governing policy, or admin: may see a request,
/// grant or session, and revoke or terminate it.
pub fn may_oversee(cfg: &Config, caller: &Caller, owner: &str, policy_name: &str) -> bool {
    caller.admin || caller.user == owner || is_policy_approver(cfg, caller, policy_name)
}
