//! Checking a chain against its signed checkpoints with a public key the
//! verifier holds (never one read from the store).

use super::{message, Checkpoint, CHECKPOINT_EVERY, KEY_PREFIX};
use crate::audit::{verify, AuditRecord, Verification};
use ring::signature::{UnparsedPublicKey, ED25519};
use std::collections::BTreeMap;

/// `ed25519:HEX` or bare hex of the 32-byte key, surrounding space ignored
/// (a saved file ends with a newline).
pub fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let hex_part = s.strip_prefix(KEY_PREFIX).unwrap_or(s);
    hex::decode(hex_part).ok()?.try_into().ok()
}

/// The plain chain's verdict (its fields unchanged) plus what the
/// checkpoints add.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AnchoredVerification {
    #[serde(flatten)]
    pub chain: Verification,
    /// Checkpoints whose signature verified.
    pub checkpoints: usize,
    /// Seq of the newest signed checkpoint (0: none).
    pub anchored_through: i64,
    /// When that checkpoint was signed (ms since the epoch; None: none
    /// verified), so an auditor sees how old the anchor is.
    pub anchored_at_ms: Option<i64>,
    /// Events after it: protected only by the plain hash chain.
    pub unanchored_events: i64,
}

/// Recomputes the chain, checks every checkpoint's signature with `key`, and
/// compares each event with the hash a checkpoint signed for it. Reports the
/// lowest seq at which anything fails.
pub fn verify_anchored(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    key: &[u8; 32],
) -> AnchoredVerification {
    let last = records
        .last()
        .map(|r| (r.seq, r.hash.clone()))
        .unwrap_or((0, crate::audit::GENESIS.to_string()));
    let chain = verify(records, (last.0, &last.1));
    let by_seq: BTreeMap<i64, &AuditRecord> = records.iter().map(|r| (r.seq, r)).collect();
    let mut first_bad: Option<(i64, String)> = None;
    let mut note = |seq: i64, msg: String| {
        if first_bad.as_ref().is_none_or(|(s, _)| seq < *s) {
            first_bad = Some((seq, msg));
        }
    };
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|c| c.seq);
    let pk = UnparsedPublicKey::new(&ED25519, key);
    let mut good = 0usize;
    let mut anchored_through = 0i64;
    let mut anchored_at_ms: Option<i64> = None;
    // Highest seq whose signed hash an earlier checkpoint listed.
    let mut covered = 0i64;
    for c in sorted {
        let m = message(c.seq, c.from_seq, c.at_ms, &c.instance, &c.head, &c.hashes);
        let sig_ok = hex::decode(&c.signature)
            .map(|sig| pk.verify(&m, &sig).is_ok())
            .unwrap_or(false);
        let shape_ok = c.from_seq >= 0
            && c.seq - c.from_seq == c.hashes.len() as i64
            && c.hashes.last() == Some(&c.head);
        if !sig_ok || !shape_ok {
            note(
                c.seq,
                format!(
                    "the checkpoint at seq {} does not verify with the public key held here \
                     (forged, altered, or signed with another key)",
                    c.seq
                ),
            );
            continue;
        }
        good += 1;
        // Sorted by seq: the last good one is the newest.
        anchored_through = anchored_through.max(c.seq);
        anchored_at_ms = Some(c.at_ms);
        for (i, signed) in c.hashes.iter().enumerate() {
            let seq = c.from_seq + 1 + i as i64;
            let Some(r) = by_seq.get(&seq) else {
                note(
                    seq,
                    format!(
                        "event {seq} is missing, but the checkpoint at seq {} signed it: \
                         events were deleted",
                        c.seq
                    ),
                );
                break;
            };
            let h = r.recomputed_hash();
            if h != *signed {
                let which = if seq == c.from_seq + 1 && c.from_seq > covered {
                    format!("event {seq} or an earlier one (no checkpoint lists events up to {}) was rewritten", c.from_seq)
                } else {
                    format!("event {seq} was rewritten")
                };
                note(
                    seq,
                    format!(
                        "{which}: it no longer matches the checkpoint signed at seq {} \
                         (later hashes were recomputed to hide it)",
                        c.seq
                    ),
                );
                break;
            }
        }
        covered = covered.max(c.seq);
    }
    let unanchored = (last.0 - anchored_through).max(0);
    // Only when nothing else explains it: a forged checkpoint says more.
    if unanchored >= CHECKPOINT_EVERY && first_bad.is_none() {
        first_bad = Some((
            anchored_through + 1,
            format!(
                "no valid signed checkpoint covers events {} to {}, though one is written every \
                 {CHECKPOINT_EVERY} events: checkpoints were deleted or forged",
                anchored_through + 1,
                last.0
            ),
        ));
    }
    let mut out = AnchoredVerification {
        chain,
        checkpoints: good,
        anchored_through,
        anchored_at_ms,
        unanchored_events: unanchored,
    };
    if let Some((seq, msg)) = first_bad {
        if out.chain.ok || out.chain.first_bad_seq.is_some_and(|s| seq <= s) {
            out.chain.ok = false;
            out.chain.first_bad_seq = Some(seq);
            out.chain.problem = Some(msg);
        }
    }
    out
}
