//! Connect secrets are issued as `jgc_...` (SPEC gives `jgs_` to sign-in
//! tokens); a secret issued before, as `jgs_...`, keeps working: secrets
//! are found by their hash, and nothing reads the prefix.

use crate::common;

use common::daemon::BOB;
use common::tunnel::*;
use jitgate::audit::AuditEntry;
use jitgate::secrets;
use jitgate::store::{SecretRecord, Store};

/// What the old code issued: `jgs_` and 256 random bits, URL-safe base64.
const OLD_SECRET: &str = "jgs_q8Zt3oWm1Yk2fX9rB4nVc7LsD0hJeGpA6uTiKwNxy5E";

/// Stores `OLD_SECRET` for grant `gid` as the old code stored a secret:
/// its SHA-256, and a SCRAM verifier under the grant's salt.
async fn add_old_secret(url: &str, gid: &str) {
    let s = Store::connect(url, 1).await.unwrap();
    let salt = s
        .secrets_of(gid)
        .await
        .unwrap()
        .first()
        .and_then(|r| secrets::scram_salt(&r.scram))
        .unwrap();
    let rec = SecretRecord {
        grant_id: gid.to_string(),
        sha256: secrets::sha256(OLD_SECRET.as_bytes()),
        scram: secrets::scram_verifier_with_salt(OLD_SECRET, &salt),
        issued_at_ms: jitgate::clock::now_ms(),
    };
    let audit = AuditEntry::new("bob", "grant.secret_issued", gid, serde_json::json!({}));
    s.add_secret(&rec, false, 8, &audit).await.unwrap();
    s.close().await;
}

#[test]
fn new_secrets_are_jgc_and_old_jgs_secrets_still_open_sessions() {
    let mut t = Tunnel::start();
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    assert!(secret.starts_with("jgc_"), "{secret}");
    let (mut s, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"new");
    drop(s);

    // A secret from before the prefix changed, stored as it was then.
    assert!(t.d.stop().success());
    let url = format!(
        "sqlite://{}",
        t.d.dir.join("data").join("jitgate.db").display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(add_old_secret(&url, &gid));
    t.d.spawn();
    let (mut s, r) = t.raw("auto-echo", OLD_SECRET);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"old");
    // And beside it the new one still works.
    let (mut s, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"new again");
    // A jgs_ text that is no secret is refused as any wrong secret is.
    let (_, r) = t.raw("auto-echo", &OLD_SECRET.replace('q', "r"));
    assert_eq!(r.status, BAD_SECRET, "{r:?}");
}
