//! What instances tell each other over PostgreSQL LISTEN/NOTIFY. A message
//! asks an instance to close sessions (the safe direction), or to look up
//! a grant's new end in the store after an extension; the store's own
//! credentials guard who may send.

use crate::sessions::{EndCause, EndReason};
use serde::{Deserialize, Serialize};

pub const CHANNEL: &str = "jitgate_control";

/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;
/// Comments are cut to this many characters in messages (the store keeps
/// the full text); a farewell line does not need more.
const MAX_COMMENT: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Close every session of a grant (revoke, or a grant the store ended).
    EndGrant {
        grant: String,
        reason: EndReason,
        by: String,
        comment: String,
    },
    /// Close every session of a user, and tombstone their revoked grants.
    EndUser {
        user: String,
        grants: Vec<String>,
        by: String,
        comment: String,
    },
    /// Close one session, owned by `instance`.
    EndSession {
        session: String,
        instance: String,
        by: String,
        comment: String,
    },
    /// A grant's end moved out (an extension): sessions keep their
    /// sockets and follow the new end. The receiver applies the end the
    /// store holds for the grant (never later than the message), so a
    /// forged or replayed message cannot extend anything the store did not.
    ExtendGrant { grant: String, expires_at_ms: i64 },
    /// How many sessions an instance closed for request `req` of `to`.
    Ack { to: String, closed: usize },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub from: String,
    pub req: String,
    #[serde(flatten)]
    pub op: Op,
}

impl Op {
    pub fn cause(&self) -> Option<EndCause> {
        let (reason, by, comment) = match self {
            Op::EndGrant {
                reason,
                by,
                comment,
                ..
            } => (*reason, by, comment),
            Op::EndUser { by, comment, .. } => (EndReason::Locked, by, comment),
            Op::EndSession { by, comment, .. } => (EndReason::Terminated, by, comment),
            Op::Ack { .. } | Op::ExtendGrant { .. } => return None,
        };
        Some(if by.is_empty() {
            EndCause::new(reason)
        } else {
            EndCause::by(reason, by, comment)
        })
    }
}

pub fn short_comment(c: &str) -> String {
    c.chars().take(MAX_COMMENT).collect()
}

impl Envelope {
    /// The NOTIFY payload. A lock naming too many grants to fit drops the
    /// list: the user's sessions still close, and the re-check finds the
    /// grants in the store.
    pub fn encode(&self) -> String {
        let s = serde_json::to_string(self).expect("serialisable");
        if s.len() <= MAX_PAYLOAD {
            return s;
        }
        let mut slim = self.clone();
        if let Op::EndUser { grants, .. } = &mut slim.op {
            grants.clear();
        }
        serde_json::to_string(&slim).expect("serialisable")
    }

    pub fn decode(payload: &str) -> Option<Envelope> {
        serde_json::from_str(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_fits_a_notify_payload() {
        let e = Envelope {
            from: "a".into(),
            req: "r1".into(),
            op: Op::EndUser {
                user: "bob".into(),
                grants: (0..2000).map(|i| format!("gr_{i:026}")).collect(),
                by: "carol".into(),
                comment: short_comment(&"x".repeat(10_000)),
            },
        };
        let p = e.encode();
        assert!(p.len() < 8000, "{}", p.len());
        let back = Envelope::decode(&p).unwrap();
        assert!(matches!(back.op, Op::EndUser { ref grants, .. } if grants.is_empty()));
        let small = Envelope {
            from: "a".into(),
            req: "r2".into(),
            op: Op::EndGrant {
                grant: "gr_1".into(),
                reason: EndReason::Revoked,
                by: "carol".into(),
                comment: "INC-42".into(),
            },
        };
        assert_eq!(Envelope::decode(&small.encode()), Some(small));
        assert_eq!(Envelope::decode("not json"), None);
        assert_eq!(
            Envelope::decode(r#"{"from":"a","req":"r","op":"nope"}"#),
            None
        );
    }
}
