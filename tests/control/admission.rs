//! Admission happens before authentication and entering the session table
//! after it; a reload, revoke or lock in between must not let a session the
//! current config or store forbids begin. These tests drive the control
//! plane's own admission paths (one per front end: secret for the tunnel,
//! user for PostgreSQL, identified key for SSH) with the change made in the
//! gap, on a real SQLite store. The PostgreSQL test in tests/postgres/pg_admission.rs
//! does the same through a real login paused mid-SCRAM.

use crate::common;

use common::daemon::base_config;
use jitgate::config::{parse_offline, Config, SharedConfig, TargetKind};
use jitgate::grants::{Admitted, Caller, Grants, Refusal};
use jitgate::metrics::Metrics;
use jitgate::sessions::SessionTable;
use jitgate::store::Store;
use std::sync::Arc;

const TARGETS: &str = r#"
[[targets]]
name = "auto-pg"
kind = "postgres"
address = "127.0.0.1:5432"
upstream = { user = "u", password_env = "PATH" }

[[targets]]
name = "auto-ssh"
kind = "ssh"
address = "127.0.0.1:22"
host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
upstream = { user = "u", key_file = "/nonexistent/key" }
"#;

fn config(auto_targets: &str) -> Config {
    let dir = std::path::Path::new("/nonexistent");
    let text = base_config(dir, 1, 2, None, TARGETS).replace(
        "targets = [\"auto-*\"]",
        &format!("targets = {auto_targets}"),
    );
    parse_offline(&text).unwrap_or_else(|e| panic!("{:?}", e.errors()))
}

struct Plane {
    grants: Arc<Grants>,
    _dir: tempfile::TempDir,
}

async fn plane() -> Plane {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/j.db", dir.path().display());
    let store = Store::connect(&url, 4).await.unwrap();
    let grants = Grants::new(
        store,
        SharedConfig::new(config("[\"auto-*\"]")),
        SessionTable::new("test"),
        Arc::new(Metrics::new()),
    );
    Plane { grants, _dir: dir }
}

fn bob() -> Caller {
    Caller::static_token("bob", false)
}

/// An active grant of bob's on `target` and its connect secret.
async fn grant(g: &Arc<Grants>, target: &str) -> (String, String) {
    let (_, grant) = g
        .create_request(&bob(), target, Some("5m"), "INC-1")
        .await
        .unwrap();
    let id = grant.expect("auto-approved").id;
    let secret = g.issue_secret(&bob(), &id, false).await.unwrap().secret;
    (id, secret)
}

/// A second instance over the same store: its revokes and locks reach this
/// one's session table only by notification, which these tests never send.
fn peer_of(g: &Arc<Grants>) -> Arc<Grants> {
    Grants::new(
        g.store_handle().clone(),
        SharedConfig::new(config("[\"auto-*\"]")),
        SessionTable::new("peer"),
        Arc::new(Metrics::new()),
    )
}

fn admin() -> Caller {
    Caller::static_token("dave", true)
}

/// Admission as each front end makes it.
async fn admit(g: &Grants, kind: TargetKind, target: &str, secret: &str) -> Admitted {
    match kind {
        TargetKind::Tcp => g.admit_by_secret(target, kind, secret).await.unwrap(),
        TargetKind::Postgres => {
            g.admit_by_user(target, kind, "bob")
                .await
                .unwrap()
                .into_iter()
                .next()
                .unwrap()
                .0
        }
        TargetKind::Ssh => g.admit_identified(target, kind, "bob").await.unwrap(),
    }
}

const KINDS: [(TargetKind, &str); 3] = [
    (TargetKind::Tcp, "auto-web"),
    (TargetKind::Postgres, "auto-pg"),
    (TargetKind::Ssh, "auto-ssh"),
];

#[tokio::test]
async fn a_reload_between_admission_and_entry_refuses_the_session() {
    let p = plane().await;
    let g = &p.grants;
    for (kind, target) in KINDS {
        let (_, secret) = grant(g, target).await;
        let admitted = admit(g, kind, target, &secret).await;
        // The reload lands while the engineer is still logging in: the
        // target stays, but no policy covers it for bob any more.
        g.config_handle().replace(config("[\"nothing-*\"]"));
        let r = g
            .open_session(&admitted, kind, "127.0.0.1:1".into(), None)
            .await;
        match r {
            Err(Refusal::NoGrant(m)) => {
                assert!(m.contains("no longer allows"), "{kind:?}: {m}")
            }
            Err(e) => panic!("{kind:?}: wrong refusal {e}"),
            Ok(_) => panic!("{kind:?}: a session the reloaded config forbids was opened"),
        }
        assert!(
            g.session_table().is_empty(),
            "{kind:?}: refused session left in the table"
        );
        g.config_handle().replace(config("[\"auto-*\"]"));
    }
}

#[tokio::test]
async fn a_lock_on_a_peer_between_admission_and_entry_refuses_the_session() {
    let p = plane().await;
    let g = &p.grants;
    let (peer, dave) = (peer_of(g), admin());
    for (kind, target) in KINDS {
        let (_, secret) = grant(g, target).await;
        let admitted = admit(g, kind, target, &secret).await;
        peer.lock(&dave, "bob", "INC-9").await.unwrap();
        let r = g
            .open_session(&admitted, kind, "127.0.0.1:1".into(), None)
            .await;
        assert!(
            matches!(r, Err(Refusal::Locked(_))),
            "{kind:?}: {:?}",
            r.err().map(|e| e.to_string())
        );
        assert!(g.session_table().is_empty());
        peer.unlock(&dave, "bob").await.unwrap();
    }
}

#[tokio::test]
async fn a_revoke_on_a_peer_between_admission_and_entry_refuses_the_session() {
    let p = plane().await;
    let g = &p.grants;
    let (peer, dave) = (peer_of(g), admin());
    for (kind, target) in KINDS {
        let (id, secret) = grant(g, target).await;
        let admitted = admit(g, kind, target, &secret).await;
        peer.revoke(&dave, &id, "INC-9 closed").await.unwrap();
        let r = g
            .open_session(&admitted, kind, "127.0.0.1:1".into(), None)
            .await;
        match r {
            Err(Refusal::NoGrant(m)) => {
                assert!(m.contains("has ended"), "{kind:?}: {m}")
            }
            other => panic!(
                "{kind:?}: {:?}",
                other.map(|_| ()).map_err(|e| e.to_string())
            ),
        }
    }
}

#[tokio::test]
async fn a_session_entered_before_a_reload_is_ended_by_it() {
    let p = plane().await;
    let g = &p.grants;
    let (_, secret) = grant(g, "auto-web").await;
    let admitted = admit(g, TargetKind::Tcp, "auto-web", &secret).await;
    let guard = g
        .open_session(&admitted, TargetKind::Tcp, "127.0.0.1:1".into(), None)
        .await
        .expect("allowed when it entered");
    assert_eq!(g.session_table().len(), 1);
    let reload_dir = tempfile::tempdir().unwrap();
    let path = reload_dir.path().join("j.toml");
    let text = base_config(std::path::Path::new("/nonexistent"), 1, 2, None, TARGETS)
        .replace("targets = [\"auto-*\"]", "targets = [\"nothing-*\"]")
        .replace(
            "key_file = \"/nonexistent/key\"",
            &format!("key_file = \"{}\"", path.display()),
        );
    std::fs::write(&path, &text).unwrap();
    let reloader = jitgate::reload::Reloader::new(
        path,
        g.config_handle().clone(),
        g.session_table().clone(),
        g.metrics_handle().clone(),
    );
    let token = guard.token().clone();
    // The reload waits for the session to confirm it closed: close it when
    // its token fires, as a front end does.
    let closer = tokio::spawn(async move {
        token.cancelled().await;
        drop(guard);
    });
    let out = reloader.reload("dave").await.expect("reload");
    assert_eq!(out["sessions_terminated"], 1, "{out}");
    closer.await.unwrap();
    assert!(g.session_table().is_empty());
}
