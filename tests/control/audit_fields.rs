//! Every field of an audit record is covered by the chain: altering any one
//! of them (at, action, subject, actor, detail, seq, prev_hash, hash) in any
//! record makes verification fail at that record, for chains and records
//! chosen by proptest. Before this only detail edits, deletions and
//! reordering were tested.

use jitgate::audit::{hash_event, verify, AuditRecord, GENESIS};
use proptest::prelude::*;

fn chain(events: &[(i64, String, String, String, String)]) -> Vec<AuditRecord> {
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for (i, (at, actor, action, subject, detail)) in events.iter().enumerate() {
        let seq = i as i64 + 1;
        let hash = hash_event(&prev, seq, *at, actor, action, subject, detail);
        out.push(AuditRecord {
            seq,
            at_ms: *at,
            actor: actor.clone(),
            action: action.clone(),
            subject: subject.clone(),
            detail: detail.clone(),
            prev_hash: prev.clone(),
            hash: hash.clone(),
        });
        prev = hash;
    }
    out
}

/// Changes one field of `r`; always to a different value.
fn alter(r: &mut AuditRecord, field: usize, extra: &str) {
    let changed = |s: &str| format!("{s}{extra}");
    match field {
        0 => r.at_ms += 1,
        1 => r.actor = changed(&r.actor),
        2 => r.action = changed(&r.action),
        3 => r.subject = changed(&r.subject),
        4 => r.detail = changed(&r.detail),
        5 => r.seq += 1,
        6 => r.prev_hash = changed(&r.prev_hash),
        _ => r.hash = changed(&r.hash),
    }
}

const FIELDS: usize = 8;

fn event() -> impl Strategy<Value = (i64, String, String, String, String)> {
    (
        0i64..4_000_000_000_000,
        "[a-z]{0,8}",
        "[a-z.]{0,12}",
        "[a-z0-9_-]{0,12}",
        "\\PC{0,24}",
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn altering_any_field_of_any_record_breaks_the_chain_there(
        events in prop::collection::vec(event(), 1..12),
        pick in any::<prop::sample::Index>(),
        field in 0..FIELDS,
        extra in "[a-z]{1,4}",
    ) {
        let mut records = chain(&events);
        let head = {
            let last = records.last().unwrap();
            (last.seq, last.hash.clone())
        };
        prop_assert!(verify(&records, (head.0, &head.1)).ok);
        let i = pick.index(records.len());
        alter(&mut records[i], field, &extra);
        let v = verify(&records, (head.0, &head.1));
        prop_assert!(!v.ok, "field {} of record {} altered, chain still ok", field, i + 1);
        prop_assert_eq!(v.first_bad_seq, Some(i as i64 + 1), "field {}: {:?}", field, v.problem);
    }
}

/// The same, each field in turn on one fixed chain, so a field that stopped
/// being hashed is named in the failure.
#[test]
fn each_field_in_turn() {
    let events: Vec<_> = (0..5)
        .map(|i| {
            (
                1_700_000_000_000 + i,
                "dave".to_string(),
                "grant.revoked".to_string(),
                format!("gr_{i}"),
                format!(r#"{{"reason":"INC-{i}"}}"#),
            )
        })
        .collect();
    for field in 0..FIELDS {
        let mut records = chain(&events);
        let (seq, hash) = (records[4].seq, records[4].hash.clone());
        alter(&mut records[2], field, "x");
        let v = verify(&records, (seq, &hash));
        assert!(!v.ok, "field {field} altered, chain still ok");
        assert_eq!(v.first_bad_seq, Some(3), "field {field}: {:?}", v.problem);
    }
}
