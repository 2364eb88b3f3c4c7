//! The store's contract, run unchanged against SQLite and a real PostgreSQL:
//! state checks in the same transaction, one winner per race, the audit chain.

use crate::common;

use jitgate::audit::AuditEntry;
use jitgate::clock::now_ms;
use jitgate::store::*;
use serde_json::json;
use std::sync::Arc;

fn entry(action: &'static str, subject: &str) -> AuditEntry {
    AuditEntry::new("test", action, subject, json!({}))
}

fn new_request(id: &str, required: i64) -> NewRequest {
    let now = now_ms();
    NewRequest {
        id: id.into(),
        requester: "alice".into(),
        target: "cache".into(),
        policy: "p".into(),
        reason: "INC-1".into(),
        duration_ms: 60_000,
        approvals_required: required,
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
    }
}

async fn approve(s: &Store, id: &str, who: &str, gid: &str) -> Result<ApproveOutcome, StoreError> {
    s.approve(id, who, "ok", now_ms(), gid, &entry("request.approved", id))
        .await
}

async fn concurrent_approvals_make_one_grant(s: Store) {
    s.create_request(&new_request("r1", 1), None, &[])
        .await
        .unwrap();
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            approve(&s, "r1", &format!("approver{i}"), &format!("g{i}")).await
        }));
    }
    let mut granted = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(ApproveOutcome::Granted(..)) => granted += 1,
            Ok(ApproveOutcome::Recorded(_)) => panic!("one approval is enough"),
            Err(StoreError::Conflict(m)) => {
                assert!(m.contains("approved"), "{m}");
                conflicts += 1
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((granted, conflicts), (1, 15));
    let grants = s
        .list_grants(&GrantFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
}

async fn approve_racing_cancel_has_one_winner(s: Store) {
    let s = Arc::new(s);
    for round in 0..10 {
        let id = format!("race{round}");
        s.create_request(&new_request(&id, 1), None, &[])
            .await
            .unwrap();
        let (s1, s2, id1, id2) = (s.clone(), s.clone(), id.clone(), id.clone());
        let gid = format!("g{round}");
        let a = tokio::spawn(async move { approve(&s1, &id1, "carol", &gid).await });
        let c = tokio::spawn(async move {
            s2.close_request(
                &id2,
                RequestState::Cancelled,
                "alice",
                "",
                now_ms(),
                &entry("request.cancelled", &id2),
            )
            .await
        });
        let (a, c) = (a.await.unwrap(), c.await.unwrap());
        assert!(
            a.is_ok() ^ c.is_ok(),
            "round {round}: exactly one must win: {a:?} / {c:?}"
        );
        let loser = if a.is_ok() { c.err() } else { a.err() };
        assert!(matches!(loser, Some(StoreError::Conflict(_))), "{loser:?}");
        let r = s.get_request(&id).await.unwrap().unwrap();
        assert!(matches!(
            r.state,
            RequestState::Approved | RequestState::Cancelled
        ));
        assert_eq!(r.grant_id.is_some(), r.state == RequestState::Approved);
    }
}

async fn two_distinct_approvers_are_needed(s: Store) {
    s.create_request(&new_request("r2", 2), None, &[])
        .await
        .unwrap();
    assert!(matches!(
        approve(&s, "r2", "carol", "g1").await,
        Ok(ApproveOutcome::Recorded(_))
    ));
    let again = approve(&s, "r2", "carol", "g1").await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("already approved")),
        "{again:?}"
    );
    match approve(&s, "r2", "dave", "g2").await {
        Ok(ApproveOutcome::Granted(r, g)) => {
            assert_eq!(r.state, RequestState::Approved);
            assert_eq!(r.approvals.len(), 2);
            assert_eq!(g.id, "g2");
            assert_eq!(g.expires_at_ms - g.granted_at_ms, 60_000);
        }
        other => panic!("{other:?}"),
    }
}

async fn terminal_states_stay_terminal(s: Store) {
    s.create_request(&new_request("r3", 1), None, &[])
        .await
        .unwrap();
    s.close_request(
        "r3",
        RequestState::Denied,
        "carol",
        "no",
        now_ms(),
        &entry("request.denied", "r3"),
    )
    .await
    .unwrap();
    let e = approve(&s, "r3", "carol", "g").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("is denied")),
        "{e}"
    );
    let e = s
        .close_request(
            "r3",
            RequestState::Cancelled,
            "alice",
            "",
            now_ms(),
            &entry("x", "r3"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)));
    let e = approve(&s, "nope", "carol", "g").await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}

async fn pending_requests_expire_only_after_their_deadline(s: Store) {
    let mut r = new_request("r4", 1);
    r.expires_at_ms = now_ms() - 1;
    s.create_request(&r, None, &[]).await.unwrap();
    let e = approve(&s, "r4", "carol", "g").await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("expired")),
        "{e}"
    );
    let rec = s
        .close_request(
            "r4",
            RequestState::Expired,
            "system",
            "",
            now_ms(),
            &entry("request.expired", "r4"),
        )
        .await
        .unwrap();
    assert_eq!(rec.state, RequestState::Expired);
    s.create_request(&new_request("r5", 1), None, &[])
        .await
        .unwrap();
    assert!(s
        .close_request(
            "r5",
            RequestState::Expired,
            "system",
            "",
            now_ms(),
            &entry("x", "r5")
        )
        .await
        .is_err());
}

async fn grants_end_once_and_secrets_die_with_them(s: Store) {
    let (_, g) = s
        .create_request(&new_request("r6", 0), Some(("g6", now_ms() + 60_000)), &[])
        .await
        .unwrap();
    let g = g.unwrap();
    assert_eq!(g.state, GrantState::Active);
    let secret = SecretRecord {
        grant_id: "g6".into(),
        sha256: [7; 32],
        scram: "SCRAM".into(),
        issued_at_ms: now_ms(),
    };
    s.add_secret(&secret, false, 8, &entry("grant.secret_issued", "g6"))
        .await
        .unwrap();
    assert_eq!(s.secrets_of("g6").await.unwrap().len(), 1);
    // Not yet at its end instant: expiry must refuse.
    let e = s
        .end_grant(
            "g6",
            GrantEnd::Expired,
            "system",
            "",
            now_ms(),
            &entry("grant.expired", "g6"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)));
    let ended = s
        .end_grant(
            "g6",
            GrantEnd::Revoked,
            "carol",
            "INC-42",
            now_ms(),
            &entry("grant.revoked", "g6"),
        )
        .await
        .unwrap();
    assert_eq!(ended.state, GrantState::Revoked);
    assert_eq!(ended.ended_by.as_deref(), Some("carol"));
    assert!(s.secrets_of("g6").await.unwrap().is_empty());
    let e = s
        .end_grant(
            "g6",
            GrantEnd::Revoked,
            "carol",
            "",
            now_ms(),
            &entry("grant.revoked", "g6"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("already revoked")),
        "{e}"
    );
    let e = s
        .add_secret(&secret, false, 8, &entry("x", "g6"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)));
}

async fn expiry_records_the_grants_own_end_instant(s: Store) {
    let end = now_ms() - 5_000;
    s.create_request(&new_request("r7", 0), Some(("g7", end)), &[])
        .await
        .unwrap();
    let g = s
        .end_grant(
            "g7",
            GrantEnd::Expired,
            "system",
            "",
            now_ms(),
            &entry("grant.expired", "g7"),
        )
        .await
        .unwrap();
    assert_eq!(g.ended_at_ms, Some(end));
    assert_eq!(g.end_reason.as_deref(), Some("expired"));
}

async fn locking_revokes_grants_and_cancels_requests(s: Store) {
    s.create_request(&new_request("r8", 0), Some(("g8", now_ms() + 60_000)), &[])
        .await
        .unwrap();
    s.create_request(&new_request("r9", 1), None, &[])
        .await
        .unwrap();
    let out = s
        .lock_user(
            "alice",
            "carol",
            "laptop stolen",
            now_ms(),
            &AuditEntry::new("carol", "user.locked", "alice", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(out.revoked_grants, vec!["g8".to_string()]);
    assert_eq!(out.cancelled_requests, vec!["r9".to_string()]);
    assert_eq!(
        s.get_grant("g8")
            .await
            .unwrap()
            .unwrap()
            .end_reason
            .as_deref(),
        Some("locked")
    );
    assert!(s.get_lock("alice").await.unwrap().is_some());
    assert!(s
        .unlock_user("alice", now_ms(), &entry("user.unlocked", "alice"))
        .await
        .unwrap());
    assert!(!s
        .unlock_user("alice", now_ms(), &entry("user.unlocked", "alice"))
        .await
        .unwrap());
}

async fn audit_chain_detects_edit_delete_and_reorder(s: Store) {
    for i in 0..5 {
        s.audit(&AuditEntry::new(
            "alice",
            "test.event",
            &format!("s{i}"),
            json!({"i": i}),
        ))
        .await
        .unwrap();
    }
    let v = s.audit_verify().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.events, 5);

    let pool = s.raw_pool();
    sqlx::query("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
        .execute(pool)
        .await
        .unwrap();
    let v = s.audit_verify().await.unwrap();
    assert_eq!(v.first_bad_seq, Some(3), "{v:?}");
    sqlx::query("UPDATE audit SET actor = 'alice' WHERE seq = 3")
        .execute(pool)
        .await
        .unwrap();
    assert!(s.audit_verify().await.unwrap().ok);

    // Reorder: swap the contents of rows 2 and 4.
    sqlx::query("UPDATE audit SET seq = -2 WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET seq = 2 WHERE seq = 4")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET seq = 4 WHERE seq = -2")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(s.audit_verify().await.unwrap().first_bad_seq, Some(2));
    sqlx::query("UPDATE audit SET seq = -2 WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET seq = 2 WHERE seq = 4")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET seq = 4 WHERE seq = -2")
        .execute(pool)
        .await
        .unwrap();
    assert!(s.audit_verify().await.unwrap().ok);

    sqlx::query("DELETE FROM audit WHERE seq = 5")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(s.audit_verify().await.unwrap().first_bad_seq, Some(5));
    sqlx::query("DELETE FROM audit WHERE seq = 2")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(s.audit_verify().await.unwrap().first_bad_seq, Some(2));
}

async fn concurrent_audit_appends_keep_the_chain(s: Store) {
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.audit(&AuditEntry::new(
                "x",
                "test.event",
                &i.to_string(),
                json!({}),
            ))
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let v = s.audit_verify().await.unwrap();
    assert!(v.ok && v.events == 40, "{v:?}");
}

macro_rules! scenarios {
    ($make:expr, $($name:ident),* $(,)?) => {{
        $(
            eprintln!("scenario {}", stringify!($name));
            $name($make(stringify!($name)).await).await;
        )*
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_contract_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let url = format!("sqlite://{}/{name}.db", dir.path().display());
        async move { Store::connect(&url, 8).await.expect("sqlite store") }
    };
    scenarios!(
        make,
        concurrent_approvals_make_one_grant,
        approve_racing_cancel_has_one_winner,
        two_distinct_approvers_are_needed,
        terminal_states_stay_terminal,
        pending_requests_expire_only_after_their_deadline,
        grants_end_once_and_secrets_die_with_them,
        expiry_records_the_grants_own_end_instant,
        locking_revokes_grants_and_cancels_requests,
        audit_chain_detects_edit_delete_and_reorder,
        concurrent_audit_appends_keep_the_chain
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("concurrent_approvals_make_one_grant.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the SQLite file must be private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_contract_on_postgres() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let make = |name: &str| {
        let url = pg.create_db(name);
        async move { Store::connect(&url, 8).await.expect("postgres store") }
    };
    scenarios!(
        make,
        concurrent_approvals_make_one_grant,
        approve_racing_cancel_has_one_winner,
        two_distinct_approvers_are_needed,
        terminal_states_stay_terminal,
        pending_requests_expire_only_after_their_deadline,
        grants_end_once_and_secrets_die_with_them,
        expiry_records_the_grants_own_end_instant,
        locking_revokes_grants_and_cancels_requests,
        audit_chain_detects_edit_delete_and_reorder,
        concurrent_audit_appends_keep_the_chain
    );
}
