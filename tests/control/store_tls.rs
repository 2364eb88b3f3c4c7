//! The PostgreSQL store over TLS, as docs/operations.md tells operators to
//! run it: `sslmode=verify-full` with the server's CA. The store's
//! connections are encrypted (the server says so), a server whose
//! certificate another CA signed is refused before anything is sent, and a
//! daemon runs on such a store. A cluster of its own: TLS is a server
//! setting the other tests do not share.

use crate::common;

use common::daemon::*;
use common::pg::PgCluster;
use jitgate::store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_runs_over_verified_tls_and_refuses_another_ca() {
    let Some(cluster) = PgCluster::own() else {
        return;
    };
    let ca_pem = cluster.enable_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("db-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let base = cluster.create_db("store_tls");
    let url = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());

    let s = Store::connect(&url, 2)
        .await
        .expect("a store over verified TLS");
    let on_tls: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(s.raw_pool())
            .await
            .unwrap();
    assert!(on_tls, "the store's connection is not on TLS");
    s.close().await;

    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let wrong = dir.path().join("other-ca.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let bad = format!("{base}?sslmode=verify-full&sslrootcert={}", wrong.display());
    let err = Store::connect(&bad, 2)
        .await
        .err()
        .expect("a server another CA vouches for is refused");
    let shown = err.to_string();
    assert!(
        shown.to_lowercase().contains("certificate") || shown.contains("TLS"),
        "{shown}"
    );

    // A daemon on it: a request is recorded and read back.
    let url = url.clone();
    tokio::task::spawn_blocking(move || {
        let d = Daemon::start_with(Some(&url), "");
        let r = d.create_request(BOB, "auto-web", "5m");
        assert_eq!(r["state"], "approved", "{r}");
        let listed = d.get("/v1/requests", Some(BOB)).unwrap();
        assert!(
            listed.body.contains(r["id"].as_str().unwrap()),
            "{}",
            listed.body
        );
    })
    .await
    .unwrap();
}
