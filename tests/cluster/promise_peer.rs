//! Access ended on one instance ends PostgreSQL and SSH sessions served by
//! its PEER (two daemons sharing a PostgreSQL store), whichever way it
//! ends: a revoke, a terminate or a lock made on the other instance, or the
//! grant's expiry (approved on one, its session on the other, whose own
//! timer must end it). The peer's client gets the farewell, nothing keeps
//! running upstream, and an operator's call counts the peer's session.
//! tests/cluster/cluster.rs covers the TCP tunnel. A reload applies to one
//! instance only (docs/operations.md), so it is not a peer's cause.

use crate::common;

use common::causes::Cause;
use common::daemon::*;
use common::free_port;
use common::pg::PgCluster;
use common::pgproxy::{PASSWORD_ENV, ROLE_PASSWORD};
use common::sshd::*;
use common::sshproxy::RemoteSleep;
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

/// How access ends in these tests: an operator's call on instance a, or
/// the grant's own expiry.
#[derive(Clone, Copy, Debug)]
enum End {
    By(Cause),
    Expiry,
}

/// A lock ends every later grant of the user, so it comes last.
const ENDS: [End; 4] = [
    End::By(Cause::Revoke),
    End::By(Cause::Terminate),
    End::Expiry,
    End::By(Cause::Lock),
];

impl End {
    /// The grant's length: long for an operator's call, short for expiry
    /// (yet long enough for the client to start, log in and run its
    /// command before the end on a loaded machine).
    fn duration(self) -> &'static str {
        match self {
            End::By(_) => "5m",
            End::Expiry => "15s",
        }
    }

    /// What the farewell says after "access to TARGET ended: ".
    fn farewell(self) -> &'static str {
        match self {
            End::By(c) => c.farewell(),
            End::Expiry => "grant expired",
        }
    }

    /// Ends the access on `a` (an operator's call) or waits for it to end by
    /// itself; an operator's call must count the session on the peer.
    fn apply(self, a: &Daemon, user: &str, gid: &str, target: &str) {
        if let End::By(c) = self {
            assert_eq!(c.apply(a, user, gid, target), Some(1), "{self:?}");
        }
    }
}

/// Waits until `a` lists `b`'s one live session, and only it. b publishes
/// its sessions to the store off the relay's path, so a lists a new session
/// of b's (and stops listing one that ended) a moment later: a terminate
/// made on a before that finds nothing, or an ended session, to end.
fn wait_listed_on(a: &Daemon, b: &Daemon) {
    let on_b = b.session_ids();
    assert_eq!(on_b.len(), 1, "b's sessions: {on_b:?}");
    wait_for("a to list b's session, and only it", || {
        a.session_ids() == on_b
    });
}

fn postgres_pair(pg: &PgCluster) -> (Daemon, Daemon) {
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
    two_instances(
        pg,
        "store_peer_pg",
        listeners,
        &target,
        &[(PASSWORD_ENV, ROLE_PASSWORD)],
    )
}

#[test]
fn access_ended_on_one_instance_ends_a_postgres_session_on_its_peer() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let (a, b) = postgres_pair(pg);
    let backends = || {
        pg.admin_sql(
            "SELECT state || '|' || query FROM pg_stat_activity WHERE application_name LIKE 'jitgate:%' AND datname = 'app_peer'",
        )
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    for end in ENDS {
        let (gid, secret) = a.grant_with_secret(BOB, "auto-db", end.duration());
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
        wait_listed_on(&a, &b);
        end.apply(&a, "bob", &gid, "auto-db");
        let o = common::wait_output(child, HANG);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{end:?}: {err}");
        let want = format!("access to auto-db ended: {}", end.farewell());
        assert!(err.contains(&want), "{end:?}: want {want:?} in {err}");
        wait_for("the backend to exit", || backends().is_empty());
    }
}

#[test]
fn access_ended_on_one_instance_ends_an_ssh_session_on_its_peer() {
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
    for end in ENDS {
        let gid = a.create_request(BOB, "auto-host", end.duration())["grant"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let key = bob_key(&b.dir);
        let remote = RemoteSleep::new();
        let mut ssh = Command::new("ssh");
        ssh.args(ssh_opts(&key))
            .args(["-p", &listen_port(&b, "ssh").to_string()])
            .args(["auto-host@127.0.0.1", "-tt", &remote.cmd]);
        let child = remote.start(ssh, Stdio::piped());
        wait_listed_on(&a, &b);
        end.apply(&a, "bob", &gid, "auto-host");
        let o = common::wait_output(child, HANG);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(255), "{end:?}: {all}");
        let want = format!("jitgate: access to auto-host ended: {}", end.farewell());
        assert!(all.contains(&want), "{end:?}: want {want:?} in {all}");
        remote.wait_gone();
    }
}
