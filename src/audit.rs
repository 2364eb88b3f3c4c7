//! The audit hash chain: each event's hash covers the previous hash and an
//! unambiguous encoding of the event, so editing, deleting or reordering any
//! stored row breaks verification at that row.

use sha2::{Digest, Sha256};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as recorded; `detail` is JSON text and is hashed byte for byte.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What a state change wants recorded; the store assigns seq and hashes.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(
        actor: &str,
        action: &'static str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Self {
        AuditEntry {
            actor: actor.to_string(),
            action,
            subject: subject.to_string(),
            detail,
        }
    }
}

/// Length-prefixed fields: no choice of separators can make two different
/// events encode the same.
pub fn hash_event(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(&at_ms.to_be_bytes());
    field(actor.as_bytes());
    field(action.as_bytes());
    field(subject.as_bytes());
    field(detail.as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub ok: bool,
    pub events: i64,
    /// The first seq at which the chain does not hold.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Checks a chain read in seq order, against the head's (seq, hash) too so
/// that deleting the newest rows is caught.
pub fn verify(records: &[AuditRecord], head: (i64, &str)) -> Verification {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    let bad = |seq: i64, msg: String| Verification {
        ok: false,
        events: records.len() as i64,
        first_bad_seq: Some(seq),
        problem: Some(msg),
    };
    for r in records {
        if r.seq != expected_seq {
            return bad(
                expected_seq,
                format!(
                    "event {expected_seq} is missing (next stored event is {})",
                    r.seq
                ),
            );
        }
        if r.prev_hash != prev {
            return bad(
                r.seq,
                format!("event {} does not link to event {}", r.seq, r.seq - 1),
            );
        }
        let h = hash_event(
            &r.prev_hash,
            r.seq,
            r.at_ms,
            &r.actor,
            &r.action,
            &r.subject,
            &r.detail,
        );
        if h != r.hash {
            return bad(
                r.seq,
                format!(
                    "event {} was altered (its hash does not match its content)",
                    r.seq
                ),
            );
        }
        prev = r.hash.clone();
        expected_seq += 1;
    }
    let last = expected_seq - 1;
    if head.0 != last || (last > 0 && head.1 != prev) {
        return bad(
            last + 1,
            format!(
                "the chain head says {} events but {} are stored: newest events were deleted",
                head.0, last
            ),
        );
    }
    Verification {
        ok: true,
        events: records.len() as i64,
        first_bad_seq: None,
        problem: None,
    }
}
