//! The audit chain anchored outside the store: someone who can write the
//! SQLite file rewrites an event and recomputes every later hash and the
//! head (the plain chain, and the server's own verify, still say ok); the
//! CLI with the pinned public key names the event. Forged checkpoints and a
//! swapped key file fail too.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use jitgate::audit::{hash_event, GENESIS};
use jitgate::audit_anchor::Anchor;
use jitgate::store::Store;
use sqlx::Row;
use std::path::{Path, PathBuf};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cli(d: &Daemon, args: &[&str]) -> Run {
    let out = d.cli(DAVE, args);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A daemon whose chain holds at least `n` events, and the auditor's saved
/// public key file (`jitgate audit --public-key`).
fn daemon_with_events(n: i64) -> (Daemon, PathBuf) {
    let d = Daemon::start();
    for _ in 0..n {
        let v = d.get("/v1/audit/verify", Some(DAVE)).unwrap().json();
        if v["events"].as_i64().unwrap_or(0) >= n {
            break;
        }
        d.create_request(ALICE, "auto-web", "5m");
    }
    let v = d.get("/v1/audit/verify", Some(DAVE)).unwrap().json();
    assert!(v["events"].as_i64().unwrap_or(0) >= n, "{v}");
    let r = cli(&d, &["audit", "--public-key"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.starts_with("ed25519:"), "{r}");
    let key = d.dir.join("auditor.pub");
    std::fs::write(&key, &r.stdout).unwrap();
    (d, key)
}

fn db(d: &Daemon) -> String {
    format!(
        "sqlite://{}",
        d.dir.join("data").join("jitgate.db").display()
    )
}

/// What an attacker with write access to the store does: change event
/// `seq`'s detail, recompute its hash and every later one and the head.
/// With `resign`, also rewrite every checkpoint signed with their own key.
async fn rewrite(url: &str, seq: i64, resign: Option<&Anchor>) {
    let s = Store::connect(url, 1).await.unwrap();
    let pool = s.raw_pool();
    let rows =
        sqlx::query("SELECT seq, at, actor, action, subject, detail FROM audit ORDER BY seq")
            .fetch_all(pool)
            .await
            .unwrap();
    let mut prev = GENESIS.to_string();
    let mut hashes = Vec::new();
    for r in &rows {
        let n: i64 = r.get("seq");
        let mut detail: String = r.get("detail");
        if n == seq {
            detail = r#"{"note":"nothing happened here"}"#.to_string();
        }
        let h = hash_event(
            &prev,
            n,
            r.get("at"),
            &r.get::<String, _>("actor"),
            &r.get::<String, _>("action"),
            &r.get::<String, _>("subject"),
            &detail,
        );
        sqlx::query("UPDATE audit SET detail = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&detail)
            .bind(&prev)
            .bind(&h)
            .bind(n)
            .execute(pool)
            .await
            .unwrap();
        hashes.push(h.clone());
        prev = h;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(pool)
        .await
        .unwrap();
    if let Some(a) = resign {
        let cps = s.audit_checkpoints(0, 10_000).await.unwrap();
        for c in cps {
            let span = hashes[c.from_seq as usize..c.seq as usize].to_vec();
            let f = a.sign(c.seq, c.from_seq, c.at_ms, span);
            sqlx::query("UPDATE audit_checkpoints SET head = $1, hashes = $2, public_key = $3, signature = $4 WHERE seq = $5")
                .bind(&f.head)
                .bind(f.hashes.join(" "))
                .bind(&f.public_key)
                .bind(&f.signature)
                .bind(c.seq)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    s.close().await;
}

fn tamper(d: &mut Daemon, seq: i64, resign: Option<&Anchor>) {
    assert!(d.stop().success());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(rewrite(&db(d), seq, resign));
    d.spawn();
    // The plain chain is fooled: the server's own check still says ok.
    let v = d.get("/v1/audit/verify", Some(DAVE)).unwrap().json();
    assert_eq!(v["ok"], true, "{v}");
}

fn key_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn untouched_chain_verifies_against_the_pinned_key() {
    let (mut d, key) = daemon_with_events(130);
    let r = cli(
        &d,
        &["audit", "--verify", "--public-key-file", &key_arg(&key)],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("audit chain ok"), "{r}");
    assert!(
        r.stdout.contains("signed checkpoints through seq 100"),
        "{r}"
    );
    // The tail after the newest checkpoint is said to be weaker.
    assert!(
        r.stdout.contains("only the plain hash chain protects them"),
        "{r}"
    );
    assert!(!r.stdout.contains("not pinned"), "{r}");

    // A clean stop anchors the tail.
    assert!(d.stop().success());
    d.spawn();
    let r = cli(
        &d,
        &[
            "--json",
            "audit",
            "--verify",
            "--public-key-file",
            &key_arg(&key),
        ],
    );
    assert_eq!(r.code, Some(0), "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["unanchored_events"], 0, "{v}");
    assert_eq!(v["anchored_through"], v["events"], "{v}");
    assert_eq!(v["key_pinned"], true, "{v}");

    // Without a pinned key it still checks, against the server's key, and says so.
    let r = cli(&d, &["audit", "--verify"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("was not pinned"), "{r}");

    let mode = std::fs::metadata(d.dir.join("data").join("audit-signing.key"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600);
}

#[test]
fn rewritten_event_with_recomputed_hashes_is_named() {
    let (mut d, key) = daemon_with_events(130);
    tamper(&mut d, 42, None);
    for args in [
        vec!["audit", "--verify", "--public-key-file", &key_arg(&key)],
        vec!["audit", "--verify"],
    ] {
        let r = cli(&d, &args);
        assert_eq!(r.code, Some(1), "{r}");
        assert!(r.stdout.contains("BROKEN at seq 42"), "{r}");
        assert!(r.stdout.contains("event 42 was rewritten"), "{r}");
    }
    // The same with the key in the environment.
    let out = std::process::Command::new(BIN)
        .args(["audit", "--verify"])
        .env("JITGATE_URL", d.url())
        .env("JITGATE_TOKEN", DAVE)
        .env(
            "JITGATE_AUDIT_PUBKEY",
            std::fs::read_to_string(&key).unwrap(),
        )
        .output_within(HANG);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN at seq 42"));
}

#[test]
fn checkpoints_resigned_with_another_key_fail_against_the_pinned_one() {
    let (mut d, key) = daemon_with_events(130);
    let other = tempfile::tempdir().unwrap();
    let mallory = Anchor::load(other.path(), None, "test").unwrap();
    tamper(&mut d, 42, Some(&mallory));
    let r = cli(
        &d,
        &["audit", "--verify", "--public-key-file", &key_arg(&key)],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stdout.contains("BROKEN at seq 100"), "{r}");
    assert!(
        r.stdout.contains("checkpoint at seq 100 does not verify"),
        "{r}"
    );

    // Swapping the key file under data_dir too fools only an unpinned check,
    // which says it was not pinned; the pinned one still fails.
    assert!(d.stop().success());
    let file = d.dir.join("data").join("audit-signing.key");
    std::fs::copy(other.path().join("audit-signing.key"), &file).unwrap();
    d.spawn();
    let r = cli(&d, &["audit", "--verify"]);
    assert_eq!(r.code, Some(0), "{r}");
    assert!(r.stdout.contains("was not pinned"), "{r}");
    let r = cli(
        &d,
        &["audit", "--verify", "--public-key-file", &key_arg(&key)],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(
        r.stdout.contains("checkpoint at seq 100 does not verify"),
        "{r}"
    );
}

/// Two instances on one PostgreSQL store sign with the one configured key
/// file; the checkpoints of both verify against it, and a rewrite in the
/// shared database is named.
#[test]
fn instances_sharing_a_postgres_store_share_the_key() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        eprintln!("skipped: no PostgreSQL binaries");
        return;
    };
    let url = pg.create_db("jitgate_audit_anchor");
    let keys = tempfile::tempdir().unwrap();
    let shared = Anchor::load(keys.path(), None, "x").unwrap();
    let file = keys.path().join("audit-signing.key");
    let extra = format!("[audit]\nsigning_key = \"{}\"\n", file.display());
    let mut a = Daemon::start_with_server(Some(&url), "instance = \"a\"", &extra);
    let mut b = Daemon::start_with_server(Some(&url), "instance = \"b\"", &extra);
    for i in 0..60 {
        let node = if i % 2 == 0 { &a } else { &b };
        node.create_request(ALICE, "auto-web", "5m");
    }
    let pinned = a.dir.join("auditor.pub");
    std::fs::write(&pinned, shared.public_key()).unwrap();
    assert!(a.stop().success());
    let r = cli(
        &b,
        &["audit", "--verify", "--public-key-file", &key_arg(&pinned)],
    );
    assert_eq!(r.code, Some(0), "{r}");
    assert!(
        !r.stdout.contains("note:"),
        "a's shutdown checkpoint anchors all: {r}"
    );
    let cps = b.get("/v1/audit/checkpoints", Some(DAVE)).unwrap().json();
    let cps = cps["checkpoints"].as_array().unwrap().clone();
    assert!(cps.iter().any(|c| c["seq"] == 100), "{cps:?}");
    assert!(cps.iter().any(|c| c["instance"] == "a"), "{cps:?}");

    assert!(b.stop().success());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(rewrite(&url, 77, None));
    a.spawn();
    let r = cli(
        &a,
        &["audit", "--verify", "--public-key-file", &key_arg(&pinned)],
    );
    assert_eq!(r.code, Some(1), "{r}");
    assert!(r.stdout.contains("event 77 was rewritten"), "{r}");
}
