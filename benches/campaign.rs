//! The hostile-input, fault and load campaign (issue 9), in one command:
//! `cargo bench --bench campaign`. Everything runs on loopback against real
//! daemons (and a private PostgreSQL cluster), bounded in time, and ends
//! with one table: cases tried, sessions held, faults injected, grants or
//! audit records lost (must be 0), sessions seen alive after their grant
//! ended (must be 0), and the daemon's peak RSS. No thresholds: a non-zero
//! "lost" or "alive after end" is a finding, printed as such.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::daemon::{Daemon, ALICE, BOB, CAROL, DAVE};
use common::pgproxy::PgProxy;
use common::tunnel::{echo, read_reply, TlsClient, Tunnel, OK};
use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TCP sessions held at once in the revoke storm (this process holds the
/// client end and the upstream end of each, under the 20,000-fd limit).
const TCP_SESSIONS: usize = 4_000;
const TCP_GRANTS: usize = 40;
const PG_SESSIONS: usize = 100;
/// One grant per (user, target): the PostgreSQL front end authenticates
/// against the newest grant of a user on a target.
const PG_GRANTS: usize = 4;
const FLOOD: usize = 3_000;
const KILL_ROUNDS: usize = 3;

#[derive(Default)]
struct Row {
    case: &'static str,
    tried: usize,
    held: usize,
    faults: usize,
    lost: usize,
    alive_after_end: usize,
    peak_rss_kib: u64,
    note: String,
}

fn peak_rss_kib(d: &Daemon) -> u64 {
    let pid = d.child.as_ref().map(|c| c.id()).unwrap_or(0);
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn revoke(d: &Daemon, gid: &str) -> Value {
    let r = d
        .post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"campaign"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// True if the peer has not closed within `wait` (a read times out).
fn still_open(s: &mut TlsClient, wait: Duration) -> bool {
    s.sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

/// Thousands of TCP sessions, then every grant revoked at once.
fn tcp_revoke_storm() -> Row {
    let t = Tunnel::start();
    let grants: Vec<(String, String)> = (0..TCP_GRANTS)
        .map(|_| t.grant(BOB, "auto-echo", "10m"))
        .collect();
    let mut sessions: Vec<(usize, TlsClient)> = Vec::with_capacity(TCP_SESSIONS);
    let mut refused = 0;
    for i in 0..TCP_SESSIONS {
        let g = i % TCP_GRANTS;
        let (mut tls, reply) = t.raw("auto-echo", &grants[g].1);
        if reply.status != OK {
            refused += 1;
            continue;
        }
        if i % 500 == 0 {
            echo(&mut tls, b"alive");
        }
        sessions.push((g, tls));
    }
    let held = sessions.len();
    let counted = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for (gid, _) in &grants {
            let d = &t.d;
            let counted = counted.clone();
            s.spawn(move || {
                let v = revoke(d, gid);
                counted.fetch_add(
                    v["sessions_terminated"].as_u64().unwrap() as usize,
                    Ordering::Relaxed,
                );
            });
        }
    });
    // Every revoke has returned: no socket may still be open.
    let mut alive = 0;
    for (_, s) in sessions.iter_mut() {
        if still_open(s, Duration::from_millis(200)) {
            alive += 1;
        }
    }
    let counted = counted.load(Ordering::Relaxed);
    Row {
        case: "TCP: sessions, then a storm of concurrent revokes",
        tried: TCP_SESSIONS,
        held,
        faults: TCP_GRANTS,
        lost: 0,
        alive_after_end: alive,
        peak_rss_kib: peak_rss_kib(&t.d),
        note: format!(
            "{refused} refused; revokes counted {counted} of {held} closed{}",
            if counted == held { "" } else { " (MISMATCH)" }
        ),
    }
}

/// PostgreSQL sessions with a query in flight, revoked at once; then a
/// password brute force, and a target that accepts and never answers.
fn pg_cases() -> Vec<Row> {
    let Some(pp) = PgProxy::start() else {
        return vec![Row {
            case: "PostgreSQL cases",
            note: "skipped: no PostgreSQL server binaries".into(),
            ..Default::default()
        }];
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let who = [
        (BOB, "bob@auto-db", "auto-db"),
        (ALICE, "alice@auto-db", "auto-db"),
        (BOB, "bob@warn-db", "warn-db"),
        (ALICE, "alice@warn-db", "warn-db"),
    ];
    let grants: Vec<(String, String, &str)> = who
        .iter()
        .map(|(token, login, target)| {
            let (g, s) = pp.grant(token, target, "10m");
            (g, s, *login)
        })
        .collect();
    let (held, alive, backends_left) = rt.block_on(async {
        let mut running = Vec::new();
        for i in 0..PG_SESSIONS {
            let (client, conn) = pp
                .tokio_postgres(grants[i % PG_GRANTS].2, &grants[i % PG_GRANTS].1)
                .await
                .expect("connect through the proxy");
            let conn = tokio::spawn(conn);
            let q = tokio::spawn(async move {
                let r = client.simple_query("SELECT pg_sleep(600)").await;
                (r.is_err(), client)
            });
            running.push((q, conn));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let held = running.len();
        let d = &pp.d;
        std::thread::scope(|s| {
            for (gid, _, _) in &grants {
                s.spawn(move || revoke(d, gid));
            }
        });
        let mut alive = 0;
        for (q, _conn) in running {
            match tokio::time::timeout(Duration::from_secs(5), q).await {
                Ok(Ok((true, client))) if client.is_closed() => {}
                _ => alive += 1,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        (held, alive, pp.backends().len())
    });
    let storm = Row {
        case: "PostgreSQL: pg_sleep(600) in flight, concurrent revokes",
        tried: PG_SESSIONS,
        held,
        faults: PG_GRANTS,
        lost: 0,
        alive_after_end: alive + backends_left,
        peak_rss_kib: peak_rss_kib(&pp.d),
        note: format!("{backends_left} upstream backends left running"),
    };

    // Brute force: wrong secrets for one user from one source.
    let (_, good) = pp.grant(BOB, "auto-db", "10m");
    let tries = 30;
    let mut limited = 0;
    for i in 0..tries {
        let out = pp.psql("bob@auto-db", &format!("jgs_wrong{i}"), "SELECT 1");
        assert!(!out.status.success(), "a wrong secret was accepted");
        if String::from_utf8_lossy(&out.stderr).contains("too many") {
            limited += 1;
        }
    }
    let after = pp.psql("bob@auto-db", &good, "SELECT 1");
    let audit =
        pp.d.get("/v1/audit?limit=1000", Some(DAVE))
            .unwrap()
            .json();
    let audited = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .count();
    let brute = Row {
        case: "PostgreSQL: password brute force from one source",
        tried: tries,
        faults: tries,
        peak_rss_kib: peak_rss_kib(&pp.d),
        note: format!(
            "{limited} answered 'too many'; {audited} auth.failed audited; right secret while blocked: {}",
            if after.status.success() { "accepted" } else { "refused" }
        ),
        ..Default::default()
    };
    vec![storm, brute]
}

/// Idle connections (slowloris) from one source; a client from another
/// loopback address must still get a session.
fn flood() -> Row {
    let t = Tunnel::start();
    let (_, secret) = t.grant(BOB, "auto-echo", "10m");
    let mut idle = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", t.port)) {
            idle.push(s);
        }
    }
    let started = Instant::now();
    let ok = std::thread::scope(|s| {
        s.spawn(|| {
            let sock = connect_from("127.0.0.2", t.port);
            let Some(sock) = sock else { return false };
            let cfg = jitgate::proxy::tcp::verify::client_config(None, Some(&t.fingerprint))
                .expect("client config");
            let conn = rustls::ClientConnection::new(
                Arc::new(cfg),
                rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            )
            .unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            use std::io::Write;
            if tls
                .write_all(&common::tunnel::hello(1, "auto-echo", &secret, ""))
                .is_err()
            {
                return false;
            }
            read_reply(&mut tls).status == OK
        })
        .join()
        .unwrap()
    });
    let waited = started.elapsed();
    Row {
        case: "TCP listener: idle-connection flood from one source",
        tried: FLOOD + 1,
        held: idle.len(),
        faults: FLOOD,
        peak_rss_kib: peak_rss_kib(&t.d),
        note: format!(
            "client from another source: {} after {:.1} s",
            if ok { "served" } else { "NOT served" },
            waited.as_secs_f64()
        ),
        ..Default::default()
    }
}

/// A client socket bound to `from` (another loopback address): std has no
/// bind-before-connect, tokio's TcpSocket does.
fn connect_from(from: &str, port: u16) -> Option<TcpStream> {
    let addr: std::net::SocketAddr = format!("{from}:0").parse().ok()?;
    let sock = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?
        .block_on(async move {
            let s = tokio::net::TcpSocket::new_v4().ok()?;
            s.bind(addr).ok()?;
            s.connect(([127, 0, 0, 1], port).into()).await.ok()
        })?;
    let std = sock.into_std().ok()?;
    std.set_nonblocking(false).ok()?;
    Some(std)
}

/// SIGKILL of the daemon in the middle of requests and approvals: every
/// answered request and approval must be in the store afterwards, no grant
/// doubled, and the audit chain must verify.
fn kill_mid_approvals() -> Row {
    let mut d = Daemon::start();
    let mut answered: Vec<(String, Option<String>)> = Vec::new();
    let mut lost = 0;
    let mut tried = 0;
    for _ in 0..KILL_ROUNDS {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pid = d.child.as_ref().unwrap().id().to_string();
        let results = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let stop = stop.clone();
                    let d = &d;
                    s.spawn(move || {
                        let mut mine = Vec::new();
                        let mut tried = 0;
                        while !stop.load(Ordering::Relaxed) {
                            tried += 1;
                            let body = r#"{"target":"cache","duration":"10m","reason":"INC-9"}"#;
                            let Ok(r) = d.post("/v1/requests", Some(ALICE), body) else {
                                break;
                            };
                            if r.status != 201 {
                                break;
                            }
                            let id = r.json()["id"].as_str().unwrap().to_string();
                            let approved = d
                                .post(
                                    &format!("/v1/requests/{id}/approve"),
                                    Some(CAROL),
                                    r#"{"comment":"ok"}"#,
                                )
                                .ok()
                                .filter(|r| r.status == 200)
                                .and_then(|r| r.json()["grant"]["id"].as_str().map(String::from));
                            mine.push((id, approved));
                        }
                        (tried, mine)
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(1500));
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            stop.store(true, Ordering::Relaxed);
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        d.child.take().unwrap().wait().unwrap();
        for (t, mine) in results {
            tried += t;
            answered.extend(mine);
        }
        d.spawn();
    }
    for (rid, grant) in &answered {
        let r = d.get(&format!("/v1/requests/{rid}"), Some(DAVE)).unwrap();
        if r.status != 200 {
            lost += 1;
            continue;
        }
        let v = r.json();
        if let Some(g) = grant {
            if v["grant_id"].as_str() != Some(g) && v["grant"]["id"].as_str() != Some(g) {
                lost += 1;
            }
        }
    }
    let grants = d.get("/v1/grants", Some(DAVE)).unwrap().json();
    let n_grants = grants["grants"].as_array().map(|a| a.len()).unwrap_or(0);
    let approved_requests = d
        .get("/v1/requests?state=approved", Some(DAVE))
        .unwrap()
        .json()["requests"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or(0);
    let doubled = n_grants.abs_diff(approved_requests);
    let verify = d.cli(DAVE, &["audit", "--verify"]);
    let chain_ok = verify.status.success();
    Row {
        case: "SIGKILL of the daemon mid request/approve (SQLite)",
        tried,
        faults: KILL_ROUNDS,
        lost: lost + doubled + usize::from(!chain_ok),
        peak_rss_kib: peak_rss_kib(&d),
        note: format!(
            "{} answered calls checked; {n_grants} grants for {approved_requests} approved requests; audit chain {}",
            answered.len(),
            if chain_ok { "verifies" } else { "BROKEN" }
        ),
        ..Default::default()
    }
}

/// data_dir on a full file system: writes fail closed with a clear error,
/// and the daemon recovers once space returns.
fn full_disk() -> Row {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("data");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return Row {
            case: "full disk under data_dir",
            note: "skipped: cannot mount a tmpfs here (needs root)".into(),
            ..Default::default()
        };
    }
    let url = format!("sqlite://{}/jitgate.db", mnt.display());
    let d = Daemon::start_with(Some(&url), "");
    // Fill the file system.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let mut refused = 0;
    let mut accepted = 0;
    let mut statuses = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let body = r#"{"target":"auto-web","duration":"10m","reason":"INC-9"}"#;
        match d.post("/v1/requests", Some(BOB), body) {
            Ok(r) if r.status == 201 => accepted += 1,
            Ok(r) => {
                refused += 1;
                statuses.insert(r.status);
            }
            Err(_) => refused += 1,
        }
    }
    std::fs::remove_file(&filler).unwrap();
    let back = d
        .post(
            "/v1/requests",
            Some(BOB),
            r#"{"target":"auto-web","duration":"10m","reason":"INC-9"}"#,
        )
        .map(|r| r.status == 201)
        .unwrap_or(false);
    let verify = d.cli(DAVE, &["audit", "--verify"]).status.success();
    let rss = peak_rss_kib(&d);
    drop(d);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    Row {
        case: "full disk under data_dir (tmpfs, SQLite)",
        tried: 51,
        faults: 50,
        lost: usize::from(!verify),
        peak_rss_kib: rss,
        note: format!(
            "{refused} refused (HTTP {statuses:?}), {accepted} accepted while full (SQLite had room in its pages); after freeing: {}; audit chain {}",
            if back { "recovered" } else { "NOT recovered" },
            if verify { "verifies" } else { "BROKEN" }
        ),
        ..Default::default()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    eprintln!("campaign: TCP revoke storm");
    rows.push(tcp_revoke_storm());
    eprintln!("campaign: PostgreSQL");
    rows.extend(pg_cases());
    eprintln!("campaign: flood");
    rows.push(flood());
    eprintln!("campaign: SIGKILL mid-approvals");
    rows.push(kill_mid_approvals());
    eprintln!("campaign: full disk");
    rows.push(full_disk());
    println!("\nCampaign ({:.0} s)\n", started.elapsed().as_secs_f64());
    println!("| case | tried | sessions held | faults injected | lost | alive after end | peak RSS | notes |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.case,
            r.tried,
            r.held,
            r.faults,
            r.lost,
            r.alive_after_end,
            if r.peak_rss_kib > 0 {
                format!("{:.1} MiB", r.peak_rss_kib as f64 / 1024.0)
            } else {
                "-".into()
            },
            r.note
        );
    }
    let findings: usize = rows.iter().map(|r| r.lost + r.alive_after_end).sum();
    println!("\nfindings (lost + alive after end): {findings}");
}
