//! The store reads a connection's admission makes carry the grant's user
//! lock in the same query: a lock must refuse the connection as "locked"
//! even though admission no longer reads the lock on its own. On SQLite
//! and on a real PostgreSQL (COUNT decodes the same in both).

use crate::common;
use crate::retired_secrets::{entry, grant_with_secret};

use jitgate::clock::now_ms;
use jitgate::store::*;

async fn reads_carry_the_lock(s: Store) {
    grant_with_secret(&s, "g-1", 3).await;
    let (found, stored) = s.grant_by_secret(&[3; 32]).await.unwrap().unwrap();
    assert_eq!(stored, [3; 32]);
    assert_eq!(found.grant.id, "g-1");
    assert!(!found.user_locked);
    assert!(!s.grant_check("g-1").await.unwrap().unwrap().user_locked);
    assert!(s.grant_check("g-none").await.unwrap().is_none());
    assert!(s.grant_by_secret(&[4; 32]).await.unwrap().is_none());
    let by_user = s.active_grants_with_scram("alice", "cache").await.unwrap();
    assert_eq!(by_user.len(), 1);
    assert!(!by_user[0].0.user_locked);
    let by_key = s.active_grants_of("alice", "cache").await.unwrap();
    assert_eq!(by_key[0].grant.id, "g-1");
    assert!(!by_key[0].user_locked);

    let out = s
        .lock_user(
            "alice",
            "dave",
            "INC-7",
            now_ms(),
            &entry("user.locked", "alice"),
        )
        .await
        .unwrap();
    assert_eq!(out.revoked_grants, vec!["g-1".to_string()]);
    let (found, _) = s.grant_by_secret(&[3; 32]).await.unwrap().unwrap();
    assert!(found.user_locked);
    assert_eq!(found.grant.state, GrantState::Revoked);
    assert!(s.grant_check("g-1").await.unwrap().unwrap().user_locked);
    // The lock revoked the grant: by user or key there is none to carry it
    // (admission then reads the lock on its own, grants/admission.rs).
    assert!(s
        .active_grants_of("alice", "cache")
        .await
        .unwrap()
        .is_empty());

    assert!(s
        .unlock_user("alice", now_ms(), &entry("user.unlocked", "alice"))
        .await
        .unwrap());
    assert!(!s.grant_check("g-1").await.unwrap().unwrap().user_locked);
}

#[tokio::test]
async fn admission_reads_carry_the_lock_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("reads.db").display());
    reads_carry_the_lock(Store::connect(&url, 4).await.unwrap()).await;
}

#[tokio::test]
async fn admission_reads_carry_the_lock_on_postgres() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let url = pg.create_db("admission_reads");
    reads_carry_the_lock(Store::connect(&url, 4).await.unwrap()).await;
}
