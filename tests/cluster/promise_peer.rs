//! A revoke made on one instance ends PostgreSQL and SSH sessions served by
//! its PEER (two daemons sharing a PostgreSQL store): the peer's client
//! gets the farewell, nothing keeps running upstream, and the revoke counts
//! the peer's session. tests/cluster/cluster.rs covers the TCP tunnel.

use crate::common;

use common::daemon::*;
use common::free_port;
use common::pg::PgCluster;
use common::pgproxy::{PASSWORD_ENV, ROLE_PASSWORD};
use common::sshd::*;
use common::sshproxy::running;
use common::tunnel::wait_for;
use common::wait::*;
use std::process::{Command, Stdio};

/// Two instances, a and b, on one store database of `pg`, with `extra`
/// (listeners on ports of their own from `listeners`, then targets).
fn two_instances(
    pg: &PgCluster,
    store_db: &str,
    listeners: impl Fn() -> String,
    targets: &str,
    env: &[(&str, &str)],
) -> (Daemon, Daemon) {
    let url = pg.create_db(store_db);
    let node = |name: &str| {
        Daemon::start_with_env(
            Some(&url),
            &format!("instance = \"{name}\"\n"),
            &(listeners() + targets),
            env,
        )
    };
    (node("a"), node("b"))
}

fn listen_port(d: &Daemon, section: &str) -> u16 {
    let text = std::fs::read_to_string(&d.config).unwrap();
    let at = text.find(&format!("[listeners.{section}]")).unwrap();
    let line = text[at..]
        .lines()
        .find(|l| l.starts_with("listen"))
        .unwrap();
    line.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('"')
        .parse()
        .unwrap()
}

#[test]
fn a_revoke_on_one_instance_ends_a_postgres_session_on_its_peer() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    // A role and database of this test's own on the shared cluster.
    pg.admin_sql(&format!(
        "CREATE ROLE jit_admin_peer LOGIN PASSWORD '{ROLE_PASSWORD}'"
    ));
    pg.admin_sql("CREATE DATABASE app_peer OWNER jit_admin_peer");
    let target = format!(
        "\n[[targets]]\nname = \"auto-db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{}\"\nupstream = {{ user = \"jit_admin_peer\", password_env = \"{PASSWORD_ENV}\", tls = \"disable\" }}\n",
        pg.port
    );
    let listeners = || {
        format!(
            "\n[listeners.postgres]\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        )
    };
    let (a, b) = two_instances(
        pg,
        "store_peer_pg",
        listeners,
        &target,
        &[(PASSWORD_ENV, ROLE_PASSWORD)],
    );
    let (gid, secret) = a.grant_with_secret(BOB, "auto-db", "5m");
    let backends = || {
        pg.admin_sql(
            "SELECT state || '|' || query FROM pg_stat_activity WHERE application_name LIKE 'jitgate:%' AND datname = 'app_peer'",
        )
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    // psql through b.
    let child = Command::new("psql")
        .arg(format!(
            "host=localhost port={} user=bob@auto-db dbname=app_peer sslmode=require",
            listen_port(&b, "postgres")
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT pg_sleep(600)"])
        .env("PGPASSWORD", &secret)
        .env("PGCONNECT_TIMEOUT", "20")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the query to run upstream", || {
        backends()
            .iter()
            .any(|b| b.starts_with("active|SELECT pg_sleep(600)"))
    });
    // Revoked on a.
    assert_eq!(a.revoke(&gid, "INC-81"), 1);
    let o = common::wait_output(child, HANG);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("access to auto-db ended: grant revoked by dave (INC-81)"),
        "{err}"
    );
    wait_for("the backend to exit", || backends().is_empty());
}

#[test]
fn a_revoke_on_one_instance_ends_an_ssh_session_on_its_peer() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let Some(sshd) = Sshd::start() else { return };
    let listeners = || {
        format!(
            "\n[listeners.ssh]\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        )
    };
    let (a, b) = two_instances(
        pg,
        "store_peer_ssh",
        listeners,
        &sshd.target("auto-host"),
        &[],
    );
    let gid = a.create_request(BOB, "auto-host", "5m")["grant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = bob_key(&b.dir);
    let marker = format!("sleep 6{}", free_port());
    let child = Command::new("ssh")
        .args(ssh_opts(&key))
        .args(["-p", &listen_port(&b, "ssh").to_string()])
        .args(["auto-host@127.0.0.1", "-tt", &marker])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the remote command to run", || running(&marker));
    assert_eq!(a.revoke(&gid, "INC-82"), 1);
    let o = common::wait_output(child, HANG);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(255), "{all}");
    assert!(
        all.contains("jitgate: access to auto-host ended: grant revoked by dave (INC-82)"),
        "{all}"
    );
    wait_for("the remote command to be gone", || !running(&marker));
}
