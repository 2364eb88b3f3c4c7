//! Why a connection was not given a session, and whose fault that is.
//!
//! One type for every front end (TCP, PostgreSQL, SSH and SSH jumps): the
//! variant decides the `reason` label of
//! `jitgate_connections_rejected_total` ([`Refusal::metric_reason`]) and the
//! blame the log line carries ([`Refusal::blame`]), so no front end keeps
//! its own mapping.

use crate::sessions::{AdmitError, EndCause};

/// Whose fault a failure is (pingora's style): the engineer's connection,
/// the target behind us, or jitgate itself (its store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The engineer: no grant, a bad secret, a lock, a limit reached.
    Downstream,
    /// The target could not be reached or refused the proxy's login.
    Upstream,
    /// jitgate itself: its store is down or cannot take writes.
    Ours,
}

impl Blame {
    /// The word logs carry (`blame=engineer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Downstream => "engineer",
            Blame::Upstream => "target",
            Blame::Ours => "jitgate",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("unknown target {0}")]
    UnknownTarget(String),
    #[error("the connect secret is not valid: mistyped, rotated, or its grant ended over a day ago (a secret dies with its grant); check `jitgate grants`, then `jitgate secret GRANT_ID`")]
    BadSecret,
    #[error("{0}")]
    NoGrant(String),
    #[error("user {0} is locked")]
    Locked(String),
    /// The grant ended between admission and entering the session table.
    #[error("access ended: {0}")]
    GrantEnded(EndCause),
    #[error("the grant already has its maximum of {0} live sessions")]
    MaxSessions(u32),
    /// The target could not be reached; the text names it and says why.
    #[error("{0}")]
    Unreachable(String),
    #[error("the store is unavailable; new connections are refused until it returns")]
    Unavailable,
    /// `[recording] on_failure = "refuse"` and the recording cannot be
    /// written; counted like the store being down (ours, not the engineer's).
    #[error("{0}")]
    Unrecorded(String),
}

impl From<AdmitError> for Refusal {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::GrantEnded(c) => Refusal::GrantEnded(c),
            AdmitError::MaxSessions(n) => Refusal::MaxSessions(n),
        }
    }
}

impl Refusal {
    /// The `reason` label of jitgate_connections_rejected_total. SPEC's
    /// label set has no "ours": our own store being down is counted as
    /// `upstream_error` (not the engineer's doing, like a target failure;
    /// see docs/dev-notes.md); [`Refusal::blame`] tells the two apart.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Refusal::UnknownTarget(_) | Refusal::NoGrant(_) | Refusal::GrantEnded(_) => "no_grant",
            Refusal::BadSecret => "auth_failed",
            Refusal::Locked(_) => "locked",
            Refusal::MaxSessions(_) => "max_sessions",
            Refusal::Unreachable(_) | Refusal::Unavailable | Refusal::Unrecorded(_) => {
                "upstream_error"
            }
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            Refusal::Unreachable(_) => Blame::Upstream,
            Refusal::Unavailable | Refusal::Unrecorded(_) => Blame::Ours,
            _ => Blame::Downstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::EndReason;

    /// SPEC's label set for jitgate_connections_rejected_total.
    const SPEC_REASONS: [&str; 6] = [
        "no_grant",
        "auth_failed",
        "locked",
        "max_sessions",
        "upstream_error",
        "protocol_error",
    ];

    #[test]
    fn every_refusal_has_a_spec_label_and_the_right_blame() {
        let all = [
            (Refusal::UnknownTarget("t".into()), Blame::Downstream),
            (Refusal::BadSecret, Blame::Downstream),
            (Refusal::NoGrant("n".into()), Blame::Downstream),
            (Refusal::Locked("bob".into()), Blame::Downstream),
            (
                Refusal::GrantEnded(EndCause::new(EndReason::Revoked)),
                Blame::Downstream,
            ),
            (Refusal::MaxSessions(2), Blame::Downstream),
            (
                Refusal::Unreachable("cannot reach t".into()),
                Blame::Upstream,
            ),
            (Refusal::Unavailable, Blame::Ours),
        ];
        for (r, blame) in all {
            assert!(SPEC_REASONS.contains(&r.metric_reason()), "{r:?}");
            assert_eq!(r.blame(), blame, "{r:?}");
        }
        assert_eq!(Refusal::MaxSessions(2).metric_reason(), "max_sessions");
        assert_eq!(
            Refusal::Unreachable(String::new()).metric_reason(),
            "upstream_error"
        );
    }
}
