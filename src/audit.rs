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

impl AuditRecord {
    /// The hash this record should carry, recomputed from its fields and
    /// its stored `prev_hash` (every verifier compares it with `hash`).
    pub fn recomputed_hash(&self) -> String {
        hash_event(
            &self.prev_hash,
            self.seq,
            self.at_ms,
            &self.actor,
            &self.action,
            &self.subject,
            &self.detail,
        )
    }
}

/// What a state change wants recorded; the store assigns seq and hashes.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub detail: serde_json::Value,
}

/// Longest actor or subject kept, in characters. Both can come from
/// unauthenticated input (`auth.failed` records the offered user and target).
pub const MAX_NAME_CHARS: usize = 128;
/// Longest string value kept inside `detail`, in characters: above the
/// longest reason the API accepts (1000 bytes), far below anything that
/// could bloat the log.
pub const MAX_DETAIL_CHARS: usize = 1024;
/// Appended to a value cut to its bound.
pub const TRUNCATED: &str = "…[truncated]";

impl AuditEntry {
    /// Bounds actor, subject and every string in `detail` here, before the
    /// store hashes anything: the stored row is what is hashed, so verifying
    /// stays consistent, and rows written before the bounds are untouched.
    pub fn new(
        actor: &str,
        action: &'static str,
        subject: &str,
        mut detail: serde_json::Value,
    ) -> Self {
        bound_strings(&mut detail);
        AuditEntry {
            actor: bounded(actor, MAX_NAME_CHARS),
            action,
            subject: bounded(subject, MAX_NAME_CHARS),
            detail,
        }
    }
}

/// `s` cut to `max` characters plus [`TRUNCATED`] when longer.
pub fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}{TRUNCATED}", &s[..cut]),
    }
}

fn bound_strings(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().nth(MAX_DETAIL_CHARS).is_some() => {
            *s = bounded(s, MAX_DETAIL_CHARS);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_strings),
        Value::Object(m) => m.values_mut().for_each(bound_strings),
        _ => {}
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
        let h = r.recomputed_hash();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_is_bounded_before_it_is_hashed() {
        let long = "\u{1b}x".repeat(5000);
        let e = AuditEntry::new(
            &long,
            "auth.failed",
            &long,
            json!({"a": [long.clone()], "b": {"c": long.clone()}, "n": 1, "short": "ok"}),
        );
        assert_eq!(
            e.actor.chars().count(),
            MAX_NAME_CHARS + TRUNCATED.chars().count()
        );
        assert!(e.subject.starts_with(&long[..128]) && e.subject.ends_with(TRUNCATED));
        for s in [&e.detail["a"][0], &e.detail["b"]["c"]] {
            let s = s.as_str().unwrap_or_default();
            assert_eq!(
                s.chars().count(),
                MAX_DETAIL_CHARS + TRUNCATED.chars().count()
            );
        }
        assert_eq!(e.detail["n"], 1);
        assert_eq!(e.detail["short"], "ok");
        // At the bound: kept whole; multi-byte characters are never split.
        let exact = "é".repeat(MAX_NAME_CHARS);
        assert_eq!(AuditEntry::new(&exact, "x", "s", json!({})).actor, exact);
        assert_eq!(bounded("日本語", 2), format!("日本{TRUNCATED}"));
    }
}
