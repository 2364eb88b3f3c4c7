//! Why a session ended, with the words the engineer is shown.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    ClientClosed,
    UpstreamClosed,
    Expired,
    Revoked,
    Terminated,
    Idle,
    Locked,
    PolicyChanged,
    Shutdown,
    Error,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientClosed => "client_closed",
            EndReason::UpstreamClosed => "upstream_closed",
            EndReason::Expired => "expired",
            EndReason::Revoked => "revoked",
            EndReason::Terminated => "terminated",
            EndReason::Idle => "idle",
            EndReason::Locked => "locked",
            EndReason::PolicyChanged => "policy_changed",
            EndReason::Shutdown => "shutdown",
            EndReason::Error => "error",
        }
    }
}

/// A session's end: the reason, who caused it and their comment, and when
/// the grant end was decided (the start of the termination-latency clock).
#[derive(Debug, Clone)]
pub struct EndCause {
    pub reason: EndReason,
    pub by: Option<String>,
    pub comment: Option<String>,
    pub at: std::time::Instant,
}

impl EndCause {
    pub fn new(reason: EndReason) -> Self {
        EndCause {
            reason,
            by: None,
            comment: None,
            at: std::time::Instant::now(),
        }
    }

    pub fn by(reason: EndReason, by: &str, comment: &str) -> Self {
        EndCause {
            reason,
            by: Some(by.to_string()),
            comment: (!comment.is_empty()).then(|| comment.to_string()),
            at: std::time::Instant::now(),
        }
    }
}

/// The farewell phrase after "access to TARGET ended: ", e.g.
/// "grant revoked by carol (INC-42 closed)".
impl fmt::Display for EndCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            EndReason::ClientClosed => "client closed the connection",
            EndReason::UpstreamClosed => "target closed the connection",
            EndReason::Expired => "grant expired",
            EndReason::Revoked => "grant revoked",
            EndReason::Terminated => "session terminated",
            EndReason::Idle => "idle timeout",
            EndReason::Locked => "user locked",
            EndReason::PolicyChanged => "policy changed",
            EndReason::Shutdown => "proxy shutting down",
            EndReason::Error => "error",
        };
        f.write_str(what)?;
        if let Some(by) = &self.by {
            write!(f, " by {by}")?;
        }
        if let Some(c) = &self.comment {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}
