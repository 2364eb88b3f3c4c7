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
use common::free_port;
use common::pg::PgCluster;
use common::sshd::{bob_key, ssh_opts, Sshd};
use common::tunnel::{read_reply, TlsClient, Tunnel, Upstreams, OK};
use serde_json::Value;
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// TCP sessions held at once in the mixed storm. Each costs the daemon two
/// file descriptors and every process here is capped at 20,000, so the
/// clients live in a child process (`--role tcp-clients`) and the upstream
/// echo server in this one.
const TCP_SESSIONS: usize = 9_000;
const TCP_GRANTS: usize = 45;
/// PostgreSQL sessions, each with `pg_sleep(600)` in flight at the revoke.
const PG_SESSIONS: usize = 100;
/// SSH sessions, each running a long `sleep` on the target.
const SSH_SESSIONS: usize = 20;
const FLOOD: usize = 3_000;
const KILL_ROUNDS: usize = 3;
/// The remote command of the SSH sessions; unique so leftovers can be found.
const SSH_SLEEP: &str = "sleep 6017";
const PG_ROLE_PASSWORD: &str = "campaign-Role-Pw-77";
const PG_PASSWORD_ENV: &str = "JITGATE_CAMPAIGN_PG_PASSWORD";

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

fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A listener that accepts and never says a word: the upstream that hangs.
fn silent_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// One daemon with all three front ends, a private PostgreSQL target and a
/// private sshd target, plus targets whose upstream never answers.
struct Mixed {
    d: Daemon,
    pg: PgCluster,
    _sshd: Sshd,
    tcp_port: u16,
    pg_port: u16,
    ssh_port: u16,
    fingerprint: String,
    key: std::path::PathBuf,
    _up: Upstreams,
}

impl Mixed {
    fn start() -> Option<Mixed> {
        let pg = PgCluster::start()?;
        pg.admin_sql(&format!(
            "CREATE ROLE jit_admin LOGIN PASSWORD '{PG_ROLE_PASSWORD}'"
        ));
        pg.admin_sql("CREATE DATABASE app OWNER jit_admin");
        let sshd = Sshd::start()?;
        let up = Upstreams::start();
        let silent = silent_server();
        let (tcp_port, pg_port, ssh_port) = (free_port(), free_port(), free_port());
        let pg_target = |name: &str, port: u16| {
            format!(
                "\n[[targets]]\nname = \"{name}\"\nkind = \"postgres\"\naddress = \"127.0.0.1:{port}\"\nupstream = {{ user = \"jit_admin\", password_env = \"{PG_PASSWORD_ENV}\", tls = \"disable\" }}\n"
            )
        };
        let mut extra = up.config(tcp_port);
        extra += &format!("\n[listeners.postgres]\nlisten = \"127.0.0.1:{pg_port}\"\n");
        extra += &format!("\n[listeners.ssh]\nlisten = \"127.0.0.1:{ssh_port}\"\n");
        extra += &pg_target("auto-db", pg.port);
        extra += &pg_target("auto-db2", pg.port);
        extra += &pg_target("auto-silent-db", silent);
        extra += &sshd.target("auto-host");
        extra += &sshd.target("auto-silent-host").replace(
            &format!("127.0.0.1:{}", sshd.port),
            &format!("127.0.0.1:{silent}"),
        );
        extra += &format!(
            "\n[[targets]]\nname = \"auto-silent\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{silent}\"\n"
        );
        let d = Daemon::start_with_env(None, "", &extra, &[(PG_PASSWORD_ENV, PG_ROLE_PASSWORD)]);
        let fingerprint = d.get("/v1/whoami", Some(BOB)).unwrap().json()["tcp_tls_fingerprint"]
            .as_str()
            .unwrap()
            .to_string();
        let key = bob_key(&d.dir);
        Some(Mixed {
            d,
            pg,
            _sshd: sshd,
            tcp_port,
            pg_port,
            ssh_port,
            fingerprint,
            key,
            _up: up,
        })
    }

    fn grant(&self, token: &str, target: &str) -> (String, String) {
        self.d.grant_with_secret(token, target, "10m")
    }

    /// tokio-postgres through the proxy, verifying its certificate.
    async fn pg_connect(
        &self,
        login: &str,
        secret: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let pem = std::fs::read(self.d.dir.join("data").join("postgres-cert.pem")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("localhost")
            .port(self.pg_port)
            .user(login)
            .password(secret)
            .dbname("app")
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .connect_timeout(Duration::from_secs(30));
        let (client, conn) = cfg
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            .await?;
        tokio::spawn(conn);
        Ok(client)
    }

    fn ssh(&self, target: &str, cmd: &str) -> std::process::Command {
        let mut c = std::process::Command::new("ssh");
        c.args(ssh_opts(&self.key))
            .args(["-p", &self.ssh_port.to_string()])
            .arg(format!("{target}@127.0.0.1"))
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    }

    fn backends(&self) -> usize {
        self.pg
            .admin_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'jitgate:%'",
            )
            .trim()
            .parse()
            .unwrap_or(usize::MAX)
    }
}

/// The child that holds the TCP clients, driven by lines on stdin.
struct TcpClients {
    child: std::process::Child,
    to: std::process::ChildStdin,
    from: std::io::BufReader<std::process::ChildStdout>,
}

impl TcpClients {
    fn spawn(port: u16, fingerprint: &str) -> TcpClients {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--role", "tcp-clients", &port.to_string(), fingerprint])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let from = std::io::BufReader::new(child.stdout.take().unwrap());
        TcpClients { child, to, from }
    }

    fn ask(&mut self, line: &str) -> Vec<usize> {
        use std::io::{BufRead, Write};
        writeln!(self.to, "{line}").unwrap();
        let mut answer = String::new();
        self.from.read_line(&mut answer).unwrap();
        answer
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }
}

impl Drop for TcpClients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--role tcp-clients PORT FINGERPRINT`: `open SECRET N` opens N tunnel
/// sessions (answers "opened K refused R"); `check MS` answers "alive A",
/// the sessions whose socket is still open after MS milliseconds.
fn tcp_clients_role(port: u16, fingerprint: &str) {
    use std::io::{BufRead, Write};
    let cfg = Arc::new(
        jitgate::proxy::tcp::verify::client_config(None, Some(fingerprint)).expect("client config"),
    );
    let mut held: Vec<TlsClient> = Vec::new();
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["open", secret, n] => {
                let n: usize = n.parse().unwrap();
                let per = n.div_ceil(4);
                let opened: Vec<Option<TlsClient>> = std::thread::scope(|s| {
                    let hs: Vec<_> = (0..4)
                        .map(|t| {
                            let cfg = cfg.clone();
                            s.spawn(move || {
                                let count = per.min(n.saturating_sub(t * per));
                                (0..count)
                                    .map(|_| open_tunnel(port, &cfg, secret))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
                });
                let refused = opened.iter().filter(|o| o.is_none()).count();
                held.extend(opened.into_iter().flatten());
                writeln!(out, "opened {} refused {refused}", n - refused).unwrap();
            }
            ["check", ms] => {
                let wait = Duration::from_millis(ms.parse().unwrap());
                let mut alive = 0;
                for s in held.iter_mut() {
                    alive += usize::from(still_open(s, wait));
                }
                writeln!(out, "alive {alive}").unwrap();
            }
            _ => return,
        }
        out.flush().unwrap();
    }
}

fn tls_to(port: u16, cfg: &Arc<rustls::ClientConfig>) -> Option<TlsClient> {
    let conn = rustls::ClientConnection::new(
        cfg.clone(),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .ok()?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    Some(rustls::StreamOwned::new(conn, tcp))
}

fn open_tunnel(port: u16, cfg: &Arc<rustls::ClientConfig>, secret: &str) -> Option<TlsClient> {
    use std::io::Write;
    let mut tls = tls_to(port, cfg)?;
    tls.write_all(&common::tunnel::hello(1, "auto-echo", secret, ""))
        .ok()?;
    (read_reply(&mut tls).status == OK).then_some(tls)
}

/// The target's `sleep` processes: exactly that command line, as the
/// sshd test user (the ssh clients' own command lines are longer).
fn leftover_ssh_sleeps() -> usize {
    std::process::Command::new("pgrep")
        .args(["-c", "-x", "-f", SSH_SLEEP])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Sessions on all three front ends held at once, then every grant revoked
/// concurrently; then hostile cases on the same daemon.
fn mixed(m: &Mixed) -> Vec<Row> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // TCP: many grants, sessions spread over them, held by the child.
    let tcp_grants: Vec<(String, String)> =
        (0..TCP_GRANTS).map(|_| m.grant(BOB, "auto-echo")).collect();
    let mut clients = TcpClients::spawn(m.tcp_port, &m.fingerprint);
    let (mut tcp_held, mut tcp_refused) = (0, 0);
    for (_, secret) in &tcp_grants {
        let r = clients.ask(&format!("open {secret} {}", TCP_SESSIONS / TCP_GRANTS));
        tcp_held += r[0];
        tcp_refused += r[1];
    }
    eprintln!("  tcp: {tcp_held} held");
    // PostgreSQL: one grant per (user, target) (the front end authenticates
    // against the newest grant of a user on a target), a query in flight.
    let pg_grants: Vec<(String, String, &str)> = [
        (BOB, "bob@auto-db", "auto-db"),
        (ALICE, "alice@auto-db", "auto-db"),
        (BOB, "bob@auto-db2", "auto-db2"),
        (ALICE, "alice@auto-db2", "auto-db2"),
    ]
    .iter()
    .map(|(token, login, target)| {
        let (g, s) = m.grant(token, target);
        (g, s, *login)
    })
    .collect();
    let queries = rt.block_on(async {
        let mut running = Vec::new();
        for i in 0..PG_SESSIONS {
            let (_, secret, login) = &pg_grants[i % pg_grants.len()];
            let client = m
                .pg_connect(login, secret)
                .await
                .expect("connect through the proxy");
            running.push(tokio::spawn(async move {
                let r = client.simple_query("SELECT pg_sleep(600)").await;
                (r.is_err(), client)
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        running
    });
    let pg_held = queries.len();
    eprintln!("  postgres: {pg_held} held");
    // SSH: one grant, several sessions each running a long sleep.
    let ssh_grant = m.d.create_request(BOB, "auto-host", "10m")["grant"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ssh_clients = Vec::new();
    for _ in 0..SSH_SESSIONS {
        ssh_clients.push(m.ssh("auto-host", SSH_SLEEP).spawn().unwrap());
        std::thread::sleep(Duration::from_millis(150));
    }
    wait_until(Duration::from_secs(30), || {
        leftover_ssh_sleeps() >= SSH_SESSIONS
    });
    let ssh_held = leftover_ssh_sleeps();
    eprintln!("  ssh: {ssh_held} held");
    let rss_held = peak_rss_kib(&m.d);

    // The storm: every grant revoked at once.
    let all: Vec<String> = tcp_grants
        .iter()
        .map(|g| g.0.clone())
        .chain(pg_grants.iter().map(|g| g.0.clone()))
        .chain([ssh_grant])
        .collect();
    let counted = AtomicUsize::new(0);
    let storm = Instant::now();
    std::thread::scope(|s| {
        for gid in &all {
            let counted = &counted;
            s.spawn(move || {
                let v = revoke(&m.d, gid);
                counted.fetch_add(
                    v["sessions_terminated"].as_u64().unwrap() as usize,
                    Ordering::Relaxed,
                );
            });
        }
    });
    let storm_took = storm.elapsed();
    // Every revoke call has returned: nothing may still be open.
    let tcp_alive = clients.ask("check 200")[0];
    let pg_alive = rt.block_on(async {
        let mut alive = 0;
        for q in queries {
            match tokio::time::timeout(Duration::from_secs(5), q).await {
                Ok(Ok((true, client))) if client.is_closed() => {}
                _ => alive += 1,
            }
        }
        alive
    });
    std::thread::sleep(Duration::from_millis(500));
    let backends_left = m.backends();
    let mut ssh_alive = 0;
    for mut c in ssh_clients {
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if c.try_wait().unwrap().is_none() {
            ssh_alive += 1;
            let _ = c.kill();
        }
        let _ = c.wait();
    }
    wait_until(Duration::from_secs(5), || leftover_ssh_sleeps() == 0);
    let sleeps_left = leftover_ssh_sleeps();
    let held = tcp_held + pg_held + ssh_held;
    let counted = counted.load(Ordering::Relaxed);
    let storm_row = Row {
        case: "TCP + PostgreSQL + SSH sessions at once, every grant revoked concurrently",
        tried: TCP_SESSIONS + PG_SESSIONS + SSH_SESSIONS,
        held,
        faults: all.len(),
        lost: 0,
        alive_after_end: tcp_alive + pg_alive + backends_left + ssh_alive + sleeps_left,
        peak_rss_kib: rss_held,
        note: format!(
            "tcp {tcp_held} ({tcp_refused} refused), pg {pg_held}, ssh {ssh_held}; {} revokes took {:.0} ms and counted {counted} closed{}; left: tcp {tcp_alive}, pg clients {pg_alive}, pg backends {backends_left}, ssh clients {ssh_alive}, remote sleeps {sleeps_left}",
            all.len(),
            storm_took.as_secs_f64() * 1000.0,
            if counted == held { "" } else { " (MISMATCH)" }
        ),
    };
    drop(clients);
    vec![storm_row, silent_upstreams(m, &rt), pg_brute_force(m, &rt)]
}

/// The whole audit log, a page at a time.
fn audit_events(d: &Daemon) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().and_then(|e| e["seq"].as_i64()).unwrap_or(0);
        let page = d
            .get(&format!("/v1/audit?after={after}&limit=1000"), Some(DAVE))
            .unwrap()
            .json();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return all;
        }
        all.extend(events);
    }
}

/// Upstreams that accept and never answer: a TCP session is admitted and
/// still closed at revoke; PostgreSQL and SSH logins are refused after a
/// bounded wait with a clear error.
fn silent_upstreams(m: &Mixed, rt: &tokio::runtime::Runtime) -> Row {
    use std::io::Write;
    let (gid, secret) = m.grant(BOB, "auto-silent");
    let cfg =
        Arc::new(jitgate::proxy::tcp::verify::client_config(None, Some(&m.fingerprint)).unwrap());
    let mut tls = tls_to(m.tcp_port, &cfg).unwrap();
    tls.write_all(&common::tunnel::hello(1, "auto-silent", &secret, ""))
        .unwrap();
    let admitted = read_reply(&mut tls).status == OK;
    revoke(&m.d, &gid);
    let tcp_alive = usize::from(admitted && still_open(&mut tls, Duration::from_millis(500)));
    let (_, secret) = m.grant(BOB, "auto-silent-db");
    let t = Instant::now();
    let pg = rt.block_on(m.pg_connect("bob@auto-silent-db", &secret));
    let pg_note = format!(
        "postgres: {} after {:.1} s",
        match &pg {
            Ok(_) => "ADMITTED".to_string(),
            Err(e) => format!(
                "refused ({})",
                e.as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string())
            ),
        },
        t.elapsed().as_secs_f64()
    );
    m.d.create_request(BOB, "auto-silent-host", "10m");
    let t = Instant::now();
    let out = m.ssh("auto-silent-host", "true").output().unwrap();
    let ssh_note = format!(
        "ssh: exit {:?} after {:.1} s ({})",
        out.status.code(),
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("")
    );
    Row {
        case: "upstreams that accept and never answer (TCP, PostgreSQL, SSH)",
        tried: 3,
        held: usize::from(admitted),
        faults: 3,
        alive_after_end: tcp_alive + usize::from(pg.is_ok()) + usize::from(out.status.success()),
        peak_rss_kib: peak_rss_kib(&m.d),
        note: format!(
            "tcp: session {} and closed at revoke; {pg_note}; {ssh_note}",
            if admitted { "admitted" } else { "refused" }
        ),
        ..Default::default()
    }
}

/// Wrong secrets for one user from one source on the PostgreSQL listener.
fn pg_brute_force(m: &Mixed, rt: &tokio::runtime::Runtime) -> Row {
    let (_, good) = m.grant(BOB, "auto-db");
    let tries = 30;
    let mut limited = 0;
    for i in 0..tries {
        match rt.block_on(m.pg_connect("bob@auto-db", &format!("jgc_wrong{i}"))) {
            Ok(_) => panic!("a wrong secret was accepted"),
            Err(e) => {
                let msg = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                if msg.contains("too many") {
                    limited += 1;
                }
            }
        }
    }
    let after = rt.block_on(m.pg_connect("bob@auto-db", &good)).is_ok();
    let audited = audit_events(&m.d)
        .iter()
        .filter(|e| e["action"] == "auth.failed")
        .count();
    Row {
        case: "PostgreSQL: password brute force from one source",
        tried: tries,
        faults: tries,
        peak_rss_kib: peak_rss_kib(&m.d),
        note: format!(
            "{limited} answered 'too many'; {audited} auth.failed audited; the right secret while blocked: {}",
            if after { "accepted" } else { "refused" }
        ),
        ..Default::default()
    }
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
    // Counted in the store itself: the API's lists are bounded.
    let (n_grants, approved_requests, doubled) = store_counts(&d);
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

/// (grants, approved requests, requests with other than exactly one grant)
/// read straight from the daemon's SQLite file.
fn store_counts(d: &Daemon) -> (usize, usize, usize) {
    let url = format!(
        "sqlite://{}",
        d.dir.join("data").join("jitgate.db").display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = jitgate::store::Store::connect(&url, 1).await.unwrap();
        let count = |sql: &'static str| {
            let pool = store.raw_pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap() as usize
            }
        };
        let grants = count("SELECT count(*) FROM grants").await;
        let approved = count("SELECT count(*) FROM requests WHERE state = 'approved'").await;
        let odd = count(
            "SELECT count(*) FROM requests r WHERE r.state = 'approved' AND (SELECT count(*) FROM grants g WHERE g.request_id = r.id) <> 1",
        )
        .await;
        store.close().await;
        (grants, approved, odd)
    })
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
            "{refused} refused (HTTP {statuses:?}), {accepted} accepted while full; after freeing: {}; audit chain {}",
            if back { "recovered" } else { "NOT recovered" },
            if verify { "verifies" } else { "BROKEN" }
        ),
        ..Default::default()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if args.get(1).map(String::as_str) == Some("--role") {
        tcp_clients_role(args[3].parse().unwrap(), &args[4]);
        return;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    eprintln!(
        "campaign: sessions on all three front ends, revoke storm, hostile upstreams and clients"
    );
    match Mixed::start() {
        Some(m) => rows.extend(mixed(&m)),
        None => rows.push(Row {
            case: "mixed front ends",
            note: "skipped: PostgreSQL or sshd missing".into(),
            ..Default::default()
        }),
    }
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
