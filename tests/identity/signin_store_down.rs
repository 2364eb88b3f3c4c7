//! A sign-in token is checked in the store every time: when the store
//! cannot answer, the check fails closed (the admin API answers 503), it
//! never lets the token through.

use jitgate::audit::AuditEntry;
use jitgate::identity::flow::Identity;
use jitgate::identity::FlowError;
use jitgate::metrics::Metrics;
use jitgate::store::{SignedIn, SigninRecord, Store};
use std::sync::Arc;

#[tokio::test]
async fn a_signin_token_is_refused_when_the_store_cannot_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/j.db", dir.path().display());
    let store = Store::connect(&url, 1).await.expect("store");
    let id = Identity::new(store.clone(), Arc::new(Metrics::new()));
    let token = "jgs_store_down_test_token";
    let now = jitgate::clock::now_ms();
    let rec = SigninRecord {
        id: "si_test".into(),
        who: SignedIn {
            user: "bob".into(),
            groups: vec!["oncall".into()],
            admin: false,
        },
        issued_at_ms: now,
        expires_at_ms: now + 3_600_000,
    };
    let hash = hex::encode(jitgate::secrets::sha256(token.as_bytes()));
    let entry = AuditEntry::new("bob", "auth.signin", "bob", serde_json::json!({}));
    store
        .create_signin(&hash, &rec, &entry)
        .await
        .expect("signin");
    let caller = id.authenticate(token).await.expect("store up");
    assert_eq!(caller.map(|c| c.user), Some("bob".to_string()));
    assert!(matches!(id.authenticate("jgs_unknown").await, Ok(None)));

    // The check an SSH login makes for a certificate naming its sign-in.
    assert!(store.signin_live_by_id("si_test", now).await.expect("up"));
    assert!(!store.signin_live_by_id("si_other", now).await.expect("up"));

    store.close().await;
    match id.authenticate(token).await {
        Err(FlowError::Unavailable(_)) => {}
        other => panic!("with the store closed the token must fail closed: {other:?}"),
    }
    assert!(
        store.signin_live_by_id("si_test", now).await.is_err(),
        "with the store closed the certificate's sign-in check is an error, refused by the SSH login"
    );
}
