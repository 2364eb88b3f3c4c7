//! The store keeps an ended grant's connect secrets as retired hashes for
//! a bounded time (so admission can say why the grant ended), never as
//! verifiers, and prunes them after `RETIRED_FOR_MS`: on SQLite and on a
//! real PostgreSQL.

use crate::common;

use jitgate::audit::AuditEntry;
use jitgate::clock::now_ms;
use jitgate::store::*;
use serde_json::json;

pub(crate) fn entry(action: &'static str, subject: &str) -> AuditEntry {
    AuditEntry::new("test", action, subject, json!({}))
}

/// An active grant `gid` for alice on cache, holding one secret hashed
/// as `[n; 32]`.
pub(crate) async fn grant_with_secret(s: &Store, gid: &str, n: u8) {
    let now = now_ms();
    let req = NewRequest {
        id: format!("r-{gid}"),
        requester: "alice".into(),
        target: "cache".into(),
        policy: "p".into(),
        reason: "INC-1".into(),
        duration_ms: 60_000,
        approvals_required: 0,
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
        extends_grant: None,
        starts_at_ms: None,
        break_glass: false,
    };
    let (_, g) = s.create_request(&req, Some(gid), &[]).await.unwrap();
    assert_eq!(g.unwrap().state, GrantState::Active);
    let secret = SecretRecord {
        grant_id: gid.into(),
        sha256: [n; 32],
        scram: "SCRAM-SHA-256$4096:c2FsdA==$a:b".into(),
        issued_at_ms: now,
    };
    s.add_secret(&secret, false, 8, &entry("grant.secret_issued", gid))
        .await
        .unwrap();
}

async fn revoke(s: &Store, gid: &str, at: i64) {
    s.end_grant(
        gid,
        GrantEnd::Revoked,
        "carol",
        "INC-42",
        at,
        &entry("grant.revoked", gid),
    )
    .await
    .unwrap();
}

async fn retired_secrets_are_kept_as_hashes_then_pruned(s: Store) {
    grant_with_secret(&s, "g-old", 1).await;
    grant_with_secret(&s, "g-new", 2).await;
    assert_eq!(
        s.active_grants_with_scram("alice", "cache")
            .await
            .unwrap()
            .len(),
        2
    );
    // Ended longer ago than a retired secret is kept.
    revoke(&s, "g-old", now_ms() - RETIRED_FOR_MS - 60_000).await;
    // Found by hash, with its ended grant; no longer a secret of it, nor a
    // verifier PostgreSQL logins are checked against.
    let (found, _) = s.grant_by_secret(&[1; 32]).await.unwrap().unwrap();
    let g = found.grant;
    assert_eq!((g.id.as_str(), g.state), ("g-old", GrantState::Revoked));
    assert!(s.secrets_of("g-old").await.unwrap().is_empty());
    let live = s.active_grants_with_scram("alice", "cache").await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].0.grant.id, "g-new");
    assert!(live.iter().all(|(_, v)| v != RETIRED));
    // The next ending prunes what is past the bound, and keeps its own.
    revoke(&s, "g-new", now_ms()).await;
    assert!(s.grant_by_secret(&[1; 32]).await.unwrap().is_none());
    let (found, _) = s.grant_by_secret(&[2; 32]).await.unwrap().unwrap();
    let g = found.grant;
    assert_eq!(g.id, "g-new");
    assert!(s.secrets_of("g-new").await.unwrap().is_empty());
    assert!(s
        .active_grants_with_scram("alice", "cache")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn retired_secrets_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("retired.db").display());
    let s = Store::connect(&url, 4).await.unwrap();
    retired_secrets_are_kept_as_hashes_then_pruned(s).await;
}

#[tokio::test]
async fn retired_secrets_on_postgres() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("retired_secrets");
    let s = Store::connect(&url, 4).await.unwrap();
    retired_secrets_are_kept_as_hashes_then_pruned(s).await;
}
