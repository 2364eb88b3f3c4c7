//! The proxy's own login to a target over TLS: `verify-full` against the
//! target's CA, SCRAM-SHA-256-PLUS with the target's certificate bound
//! into the proof (the server checks the binding, so a wrong one fails the
//! login), and the salted password reused by later logins. A cluster of its
//! own, since TLS is a server setting the other tests do not share.

use crate::common;

use common::daemon::*;
use common::pg::PgCluster;
use common::pgproxy::PgProxy;

#[test]
fn a_target_over_verified_tls_is_logged_into_with_scram_plus_and_again() {
    let Some(cluster) = PgCluster::own() else {
        return;
    };
    let ca_pem = cluster.enable_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("target-ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let tls = format!(r#"tls = "verify-full", ca_file = "{}""#, ca.display());
    let p = PgProxy::on(cluster, false, &tls, "");
    let (_, secret) = p.grant(BOB, "auto-db", "5m");
    // Each psql is one upstream login: the second and third reuse the
    // salted password the first derived.
    for round in 0..3 {
        let o = p.psql(
            "bob@auto-db",
            &secret,
            "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        let (so, se) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "round {round}: {se}");
        assert_eq!(so.trim(), "true", "the proxy's backend is on TLS: {se}");
    }
    // PostgreSQL offers SCRAM-SHA-256-PLUS over TLS and the proxy then
    // always takes it (src/proxy/postgres/upstream.rs), so these logins
    // passed the server's channel-binding check.

    // A wrong CA is refused before any password is sent.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let bad = dir.path().join("other-ca.pem");
    std::fs::write(&bad, other.cert.pem()).unwrap();
    let tls = format!(r#"tls = "verify-full", ca_file = "{}""#, bad.display());
    let q = PgProxy::on(cluster, false, &tls, "");
    let (_, secret) = q.grant(BOB, "auto-db", "5m");
    let o = q.psql("bob@auto-db", &secret, "SELECT 1");
    let se = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a login through an unverified target");
    assert!(se.contains("TLS") || se.contains("certificate"), "{se}");
}
