//! `jitgate psql TARGET -- ARGS`: the real psql through the proxy to the
//! real PostgreSQL with a fresh connect secret (in the environment, never
//! argv) and the listener's certificate verified (`sslmode=verify-full`
//! against whoami's `postgres_ca_pem`); without a grant, the exact
//! `jitgate request` command instead.

use crate::common;

use common::client_home::ClientHome;
use common::daemon::*;
use common::pgproxy::PgProxy;
use common::sshproxy::out;
use common::wait::*;
use std::process::Command;

/// `jitgate psql` in `home`, with the cluster's own psql first on PATH.
fn psql(p: &PgProxy, home: &ClientHome, token: &str, args: &[&str]) -> Command {
    let mut all = vec!["psql", "auto-db", "--"];
    all.extend_from_slice(args);
    let mut c = home.cli(&p.d, token, &all);
    let bin = p.cluster.tool("psql");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path)
        .env("PGSSLMODE", "disable")
        .env("PGHOSTADDR", "192.0.2.1");
    c
}

#[test]
fn jitgate_psql_runs_a_query_with_a_fresh_secret_and_verified_tls() {
    let Some(p) = PgProxy::start() else { return };
    p.d.create_request(ALICE, "auto-db", "5m");
    let home = ClientHome::new();
    // The user's PGSSLMODE=disable and PGHOSTADDR are overridden.
    let sql = "select current_user";
    let o = psql(&p, &home, ALICE, &["-d", &p.db, "-At", "-c", sql]).output_within(HANG);
    let (so, se) = out(&o);
    assert!(o.status.success(), "{se}");
    assert_eq!(so.trim(), p.role, "the target sees its own role: {se}");
    let dir = home.server_dir(&p.d);
    let pem = std::fs::read_to_string(dir.join("postgres-ca.pem")).unwrap();
    let who = p.d.get("/v1/whoami", Some(ALICE)).unwrap().json();
    assert_eq!(pem, who["postgres_ca_pem"].as_str().unwrap());
    let audit = p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
    assert_eq!(
        audit.matches("\"grant.secret_issued\"").count(),
        1,
        "{audit}"
    );

    // verify-full really verifies: another CA in the file fails the login.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("postgres-ca.pem"), other.cert.pem()).unwrap();
    let rootcert = dir.join("postgres-ca.pem");
    let o = Command::new(p.cluster.tool("psql"))
        .env("PGPASSWORD", "irrelevant")
        .arg(format!(
            "host=127.0.0.1 port={} user=alice@auto-db dbname={} sslmode=verify-full sslrootcert={}",
            p.port,
            p.db,
            rootcert.display()
        ))
        .args(["-c", "select 1"])
        .output_within(HANG);
    assert!(!o.status.success());
    assert!(
        out(&o).1.contains("certificate verify failed"),
        "{:?}",
        out(&o)
    );
}

#[test]
fn without_a_grant_jitgate_psql_prints_the_exact_request_command() {
    let Some(p) = PgProxy::start() else { return };
    let home = ClientHome::new();
    let o = psql(&p, &home, ALICE, &["-c", "select 1"]).output_within(HANG);
    let (so, se) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert_eq!(so, "");
    assert!(se.contains("no active grant for auto-db"), "{se}");
    assert!(
        se.lines()
            .any(|l| l.trim().starts_with("jitgate request auto-db --for ")
                && !l.contains("--reason")),
        "{se}"
    );
}

/// The listener's certificate is the CA given to psql, but names another
/// host: only `verify-full` (not `verify-ca`, nor `require` with a root
/// certificate) refuses it, before any password is sent.
#[test]
fn jitgate_psql_checks_the_host_name_in_the_listener_certificate() {
    let Some(cluster) = common::pg::PgCluster::shared() else {
        return;
    };
    let cert = rcgen::generate_simple_self_signed(vec!["db.other.example".into()]).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let port = common::free_port();
    let extra = format!(
        "\n[listeners.postgres]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         \n[[targets]]\nname = \"auto-db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{}\"\nupstream = {{ user = \"postgres\", tls = \"disable\" }}\n",
        cert_file.display(),
        key_file.display(),
        cluster.port
    );
    let d = Daemon::start_with(None, &extra);
    d.create_request(ALICE, "auto-db", "5m");
    let home = ClientHome::new();
    let bin = cluster.tool("psql");
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = home
        .cli(&d, ALICE, &["psql", "auto-db", "--", "-c", "select 1"])
        .env("PATH", path)
        .output_within(HANG);
    let (so, se) = out(&o);
    assert_ne!(o.status.code(), Some(0), "{so}{se}");
    assert!(se.contains("does not match host name"), "{se}");
}
