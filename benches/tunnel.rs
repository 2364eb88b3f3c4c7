//! TCP tunnel benchmarks (issue 4), against HAProxy doing the same
//! TLS-terminated relay and against plain TCP, in one run:
//!
//! 1. termination latency, grant end to both sockets closed: one session at
//!    expiry, one session at revoke, and as many sessions under one grant as
//!    the 20,000-fd limit allows, ended by one revoke;
//! 2. relay throughput, upload and download, 1 and 8 streams;
//! 3. daemon RSS per idle session;
//! 4. connection setup rate with full TLS handshakes.
//!
//! Run it with `benches/compare.sh` (installs HAProxy, prints the machine)
//! or `cargo bench --bench tunnel`.
//!
//! Prints one table of medians and ratios on stdout (progress and per-run
//! figures on stderr); figures go to docs/benchmarks.md. No thresholds.
//!
//! Processes: this one coordinates and runs the upstream server (so it owns
//! the upstream end of every session); the daemon and HAProxy are children;
//! the thousands of idle clients live in a child of this same binary
//! (`--role clients`, driven over stdin/stdout), because every process here
//! is capped at 20,000 open files. Close instants cross processes as wall
//! clock microseconds (CLOCK_REALTIME, the clock grants expire on).

/// Only the daemon helpers of tests/common (config, tokens, plain HTTP): the
/// rest of it brings in the PostgreSQL test clients, which this bench does
/// not need. They expect `free_port` and `wait` in their parent module.
#[path = "../tests/common/daemon.rs"]
#[allow(dead_code)]
mod daemon;
#[path = "../tests/common/wait.rs"]
#[allow(dead_code)]
mod wait;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

use anyhow::{bail, ensure, Context};
use daemon::{http, BOB, DAVE};
use jitgate::proxy::tcp::handshake::{self, Hello, Kind, Status};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Repeats of the one-session termination measurements (after 2 warm-ups).
const ONE_SESSION_REPEATS: usize = 30;
/// Grant length for the expiry measurement: long enough to set up a session.
const SHORT_GRANT: &str = "500ms";
/// Runs of the many-session revoke and of the idle-memory measurement.
const MANY_RUNS: usize = 3;
/// Sessions opened at once while filling the daemon (it admits 1,024
/// unauthenticated connections at a time).
const OPEN_CONCURRENCY: usize = 128;
/// Fds the daemon may need beyond the sessions (store, admin call, metrics).
const FD_MARGIN: usize = 100;
const MAX_SESSIONS: usize = 10_000;
const TRANSFER_BYTES: u64 = 512 << 20;
const TRANSFER_REPEATS: usize = 5;
const SETUP_CLIENTS: usize = 32;
const SETUP_SECONDS: u64 = 5;
const SETUP_REPEATS: usize = 3;
/// The tunnel target every session uses; the policy below auto-approves it.
const TARGET: &str = "bench-echo";
const NOT_INSTALLED: &str = "haproxy: not installed (run benches/compare.sh)";

static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--role") {
        if let Err(e) = clients_role() {
            eprintln!("clients child failed: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo test --benches` runs bench binaries with no work expected.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    if let Err(e) = run() {
        eprintln!("tunnel bench failed: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- clocks, stats

/// Wall clock in µs: comparable across processes and with `expires_at`.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Copy)]
struct Dist {
    p50: f64,
    p99: f64,
    max: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn dist(mut v: Vec<f64>) -> Option<Dist> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Dist {
        p50: pct(&v, 0.50),
        p99: pct(&v, 0.99),
        max: v[v.len() - 1],
    })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn fmt_dist(d: Option<Dist>) -> String {
    match d {
        Some(d) => format!("{} / {} / {} ms", ms(d.p50), ms(d.p99), ms(d.max)),
        None => "no samples".into(),
    }
}

// ---------------------------------------------------------------- routes

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = Box<dyn Io>;

/// One way to reach the upstream server.
#[derive(Clone)]
enum Route {
    Direct {
        port: u16,
    },
    Haproxy {
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    },
    Jitgate {
        port: u16,
        tls: Arc<rustls::ClientConfig>,
        secret: String,
    },
}

async fn tcp(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

async fn tls_connect(
    port: u16,
    tls: &Arc<rustls::ClientConfig>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let s = tcp(port).await?;
    Ok(tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, s)
        .await?)
}

/// Connects and, through jitgate, completes the tunnel handshake (OK reply).
async fn open(route: &Route) -> anyhow::Result<Conn> {
    match route {
        Route::Direct { port } => Ok(Box::new(tcp(*port).await?)),
        Route::Haproxy { port, tls } => Ok(Box::new(tls_connect(*port, tls).await?)),
        Route::Jitgate { port, tls, secret } => {
            let mut s = tls_connect(*port, tls).await?;
            let hello = Hello {
                kind: Kind::Connect,
                target: TARGET.into(),
                secret: secret.clone(),
                session_id: String::new(),
            };
            s.write_all(&handshake::encode_hello(&hello)).await?;
            s.flush().await?;
            let r = handshake::read_reply(&mut s).await?;
            ensure!(
                r.status == Status::Ok,
                "tunnel refused: {:?} {}",
                r.status,
                r.message
            );
            Ok(Box::new(s))
        }
    }
}

/// Starts echo mode tagged `idx` (u32::MAX: untracked) and checks one byte
/// comes back, so the session is known to be relaying end to end.
async fn echo_tagged(c: &mut Conn, idx: u32) -> anyhow::Result<()> {
    let mut m = [b'E', 0, 0, 0, 0, b'x'];
    m[1..5].copy_from_slice(&idx.to_be_bytes());
    c.write_all(&m).await?;
    c.flush().await?;
    let mut b = [0u8; 1];
    c.read_exact(&mut b).await?;
    ensure!(b[0] == b'x', "echo returned {b:?}");
    Ok(())
}

/// Waits for EOF or a reset and returns the instant it was seen.
async fn wait_closed(c: &mut Conn) -> i64 {
    let mut b = [0u8; 64];
    loop {
        match c.read(&mut b).await {
            Ok(0) | Err(_) => return now_us(),
            Ok(_) => continue,
        }
    }
}

// ---------------------------------------------------------------- upstream

/// The upstream server, with one listener per route so the routes do not
/// share ephemeral ports. The first byte of a connection picks the mode:
/// `E idx:u32` echo, recording when the peer closed; `U n:u64` sink of n
/// bytes, answering n; `D n:u64` source of n bytes, then close.
struct Upstream {
    jitgate: u16,
    haproxy: u16,
    direct: u16,
    closes: Arc<Mutex<HashMap<u32, i64>>>,
}

impl Upstream {
    async fn start() -> anyhow::Result<Upstream> {
        let closes = Arc::new(Mutex::new(HashMap::new()));
        let mut ports = [0u16; 3];
        for p in &mut ports {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            *p = l.local_addr()?.port();
            tokio::spawn(upstream_accept(l, closes.clone()));
        }
        Ok(Upstream {
            jitgate: ports[0],
            haproxy: ports[1],
            direct: ports[2],
            closes,
        })
    }

    fn clear(&self) {
        if let Ok(mut m) = self.closes.lock() {
            m.clear();
        }
    }

    fn snapshot(&self) -> HashMap<u32, i64> {
        self.closes.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Blocks until the upstream end of session `idx` closed.
    fn wait_for(&self, idx: u32, limit: Duration) -> Option<i64> {
        let until = Instant::now() + limit;
        loop {
            if let Some(t) = self.closes.lock().ok().and_then(|m| m.get(&idx).copied()) {
                return Some(t);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Blocks until `n` upstream ends closed (or the limit passes).
    fn wait_count(&self, n: usize, limit: Duration) -> HashMap<u32, i64> {
        let until = Instant::now() + limit;
        loop {
            let m = self.snapshot();
            if m.len() >= n || Instant::now() > until {
                return m;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn upstream_accept(l: TcpListener, closes: Arc<Mutex<HashMap<u32, i64>>>) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                tokio::spawn(upstream_conn(s, closes.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn upstream_conn(mut s: TcpStream, closes: Arc<Mutex<HashMap<u32, i64>>>) {
    let Ok(mode) = s.read_u8().await else { return };
    match mode {
        b'E' => {
            let Ok(idx) = s.read_u32().await else { return };
            let mut buf = [0u8; 512];
            loop {
                let done = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => true,
                    Ok(n) => s.write_all(&buf[..n]).await.is_err(),
                };
                if done {
                    let t = now_us();
                    if idx != u32::MAX {
                        if let Ok(mut m) = closes.lock() {
                            m.insert(idx, t);
                        }
                    }
                    return;
                }
            }
        }
        b'U' => {
            let Ok(want) = s.read_u64().await else { return };
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            while got < want {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n as u64,
                }
            }
            let _ = s.write_u64(got).await;
            let _ = s.shutdown().await;
        }
        b'D' => {
            let Ok(mut left) = s.read_u64().await else {
                return;
            };
            while left > 0 {
                let k = left.min(ZEROS.len() as u64) as usize;
                if s.write_all(&ZEROS[..k]).await.is_err() {
                    return;
                }
                left -= k as u64;
            }
            let _ = s.shutdown().await;
        }
        _ => {}
    }
}

// ---------------------------------------------------------------- processes

fn read_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn rss_kib(pid: u32) -> Option<u64> {
    read_status_kib(pid, "VmRSS:")
}

/// (utime, stime) of a process in clock ticks (10 ms here).
fn cpu_split(pid: u32) -> (u64, u64) {
    let parse = || -> Option<(u64, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
    };
    parse().unwrap_or((0, 0))
}

fn cpu_ticks(pid: u32) -> u64 {
    let (u, s) = cpu_split(pid);
    u + s
}

/// CPU a process used since `since`, as "user X ms + sys Y ms".
fn cpu_since(pid: u32, since: (u64, u64)) -> String {
    let (u, s) = cpu_split(pid);
    format!(
        "user {} ms + sys {} ms",
        (u - since.0) * 10,
        (s - since.1) * 10
    )
}

/// Waits until `pid` used at most one clock tick (~10 ms) of CPU over a
/// `window`: its queues (e.g. the audit writer) are drained and it is idle.
fn wait_idle(pid: u32, window: Duration, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let a = cpu_ticks(pid);
        std::thread::sleep(window);
        let b = cpu_ticks(pid);
        if b.saturating_sub(a) <= 1 || start.elapsed() > limit {
            return start.elapsed();
        }
    }
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The soft "Max open files" of a process.
fn fd_limit(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The release daemon on a fresh SQLite store with the tunnel listener and
/// an auto-approving policy for `TARGET`.
struct BenchDaemon {
    child: Child,
    admin: u16,
    tunnel: u16,
    data: PathBuf,
    log: PathBuf,
    fingerprint: String,
    _tmp: tempfile::TempDir,
}

struct Grant {
    id: String,
    secret: String,
    expires_at_us: i64,
}

struct Revoked {
    t0: i64,
    t1: i64,
    sessions: u64,
}

impl BenchDaemon {
    fn start(upstream: u16) -> anyhow::Result<BenchDaemon> {
        let tmp = tempfile::Builder::new()
            .prefix("jitgate-bench-")
            .tempdir()?;
        let (admin, metrics, tunnel) = (free_port(), free_port(), free_port());
        let extra = format!(
            r#"
[listeners.tcp]
listen = "127.0.0.1:{tunnel}"

[[targets]]
name = "{TARGET}"
kind = "tcp"
address = "127.0.0.1:{upstream}"

[[policies]]
name = "bench"
requesters = ["group:oncall"]
targets = ["bench-*"]
approvals_required = 0
max_duration = "1h"
"#
        );
        let data = tmp.path().join("data");
        let config = tmp.path().join("jitgate.toml");
        std::fs::write(
            &config,
            daemon::base_config(&data, admin, metrics, None, &extra),
        )?;
        let log = tmp.path().join("daemon.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(daemon::BIN)
            .args(["serve", "--config", &config.display().to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()
            .context("spawning jitgate")?;
        let mut d = BenchDaemon {
            child,
            admin,
            tunnel,
            data,
            log,
            fingerprint: String::new(),
            _tmp: tmp,
        };
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = d.child.try_wait() {
                bail!("jitgate exited with {st}: {}", d.logs());
            }
            if matches!(http(admin, "GET", "/readyz", None, None), Ok(r) if r.status == 200) {
                break;
            }
            ensure!(Instant::now() < until, "jitgate not ready: {}", d.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        let w: serde_json::Value =
            serde_json::from_str(&http(admin, "GET", "/v1/whoami", Some(BOB), None)?.body)?;
        d.fingerprint = w["tcp_tls_fingerprint"]
            .as_str()
            .context("whoami has no tcp_tls_fingerprint")?
            .to_string();
        Ok(d)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tls(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::new(jitgate::proxy::tcp::verify::client_config(
            None,
            Some(&self.fingerprint),
        )?))
    }

    /// An auto-approved grant for bob on `TARGET`, with its connect secret.
    fn grant(&self, duration: &str) -> anyhow::Result<Grant> {
        let body = serde_json::json!({"target": TARGET, "duration": duration, "reason": "bench"});
        let r = http(
            self.admin,
            "POST",
            "/v1/requests",
            Some(BOB),
            Some(&body.to_string()),
        )?;
        ensure!(r.status == 201, "request refused: {} {}", r.status, r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body)?;
        let id = v["grant"]["id"]
            .as_str()
            .context("request not auto-approved")?
            .to_string();
        let exp = v["grant"]["expires_at"].as_str().context("no expires_at")?;
        let expires_at_us = humantime::parse_rfc3339(exp)?
            .duration_since(UNIX_EPOCH)?
            .as_micros() as i64;
        let path = format!("/v1/grants/{id}/secret");
        let s = http(self.admin, "POST", &path, Some(BOB), Some(""))?;
        ensure!(s.status == 200, "secret refused: {} {}", s.status, s.body);
        let v: serde_json::Value = serde_json::from_str(&s.body)?;
        let secret = v["secret"].as_str().context("no secret")?.to_string();
        Ok(Grant {
            id,
            secret,
            expires_at_us,
        })
    }

    fn route(&self, tls: &Arc<rustls::ClientConfig>, g: &Grant) -> Route {
        Route::Jitgate {
            port: self.tunnel,
            tls: tls.clone(),
            secret: g.secret.clone(),
        }
    }

    /// Revokes as dave; `t0` is taken on a connected socket just before the
    /// request is written, `t1` when the whole response has arrived.
    fn revoke(&self, gid: &str) -> anyhow::Result<Revoked> {
        let body = r#"{"reason":"bench"}"#;
        let req = format!(
            "POST /v1/grants/{gid}/revoke HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {DAVE}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let t0 = now_us();
        s.write_all(req.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let t1 = now_us();
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP response")?;
        ensure!(head.starts_with("HTTP/1.1 200"), "revoke failed: {text}");
        let v: serde_json::Value = serde_json::from_str(body)?;
        Ok(Revoked {
            t0,
            t1,
            sessions: v["sessions_terminated"].as_u64().unwrap_or(0),
        })
    }

    /// The combined certificate + key PEM that HAProxy loads, so both proxies
    /// present the same certificate and do the same crypto.
    fn combined_pem(&self, to: &Path) -> anyhow::Result<()> {
        let mut pem = std::fs::read(self.data.join("tcp-cert.pem"))?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend(std::fs::read(self.data.join("tcp-key.pem"))?);
        std::fs::write(to, pem)?;
        Ok(())
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        kill(&mut self.child);
        let logs = self.logs();
        for bad in ["panicked", "audit queue full"] {
            if logs.contains(bad) {
                eprintln!("!! the daemon log contains {bad:?}:\n{logs}");
            }
        }
    }
}

fn find_haproxy() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    if sbin.exists() {
        return Some(sbin);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("haproxy"))
            .find(|f| f.exists())
    })
}

/// HAProxy terminating TLS with jitgate's certificate and relaying plain TCP
/// to the upstream, in the foreground as a child.
struct Haproxy {
    child: Child,
    port: u16,
}

/// `maxconn 30000` would make HAProxy ask for 60,017 fds, which it refuses
/// to start without under the 20,000 hard limit; use the most that fits.
fn haproxy_maxconn() -> usize {
    ((fd_limit(std::process::id()) - 40) / 2).min(30_000)
}

impl Haproxy {
    fn start(bin: &Path, dir: &Path, pem: &Path, backend: u16) -> anyhow::Result<Haproxy> {
        let port = free_port();
        let maxconn = haproxy_maxconn();
        let cfg = format!(
            "global
    maxconn {maxconn}
    nbthread 2
    tune.ssl.default-dh-param 2048

defaults
    mode tcp
    maxconn {maxconn}
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend tunnel
    bind 127.0.0.1:{port} ssl crt {pem}
    default_backend upstream

backend upstream
    server up 127.0.0.1:{backend}
",
            pem = pem.display()
        );
        let path = dir.join(format!("haproxy-{port}.cfg"));
        std::fs::write(&path, cfg)?;
        let log = std::fs::File::create(dir.join(format!("haproxy-{port}.log")))?;
        let mut child = Command::new(bin)
            .args(["-db", "-f", &path.display().to_string()])
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning haproxy")?;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join(format!("haproxy-{port}.log")));
                bail!("haproxy exited with {st}: {}", log.unwrap_or_default());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Haproxy { child, port });
            }
            if Instant::now() > until {
                kill(&mut child);
                bail!("haproxy did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn route(&self, tls: &Arc<rustls::ClientConfig>) -> Route {
        Route::Haproxy {
            port: self.port,
            tls: tls.clone(),
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------- clients child

/// Runs as `--role clients`: holds many sessions for the coordinator.
/// Commands, one per line on stdin, each answered by one line on stdout:
/// - `open N CONC ROUTE...` (ROUTE: `jitgate PORT FP SECRET`, `haproxy PORT
///   FP`, `direct PORT`) opens N sessions, CONC at a time, each echoing once
///   (tag = its index), then idle: `opened OK FAILED MILLIS FIRST_ERROR`;
/// - `closes MILLIS` waits for all to be closed by the peer: `closes K OPEN`
///   followed by K lines `IDX MICROS`;
/// - `drop` closes them all: `dropped`.
fn clients_role() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut held: Option<Held> = None;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        let line = line?;
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            Some("open") => {
                if let Some(mut h) = held.take() {
                    rt.block_on(h.tasks.shutdown());
                }
                let n: usize = w.get(1).context("n")?.parse()?;
                let conc: usize = w.get(2).context("conc")?.parse()?;
                let route = parse_route(&w[3..])?;
                let start = Instant::now();
                let (h, err) = rt.block_on(open_many(route, n, conc));
                let ok = h.open.load(Ordering::Acquire);
                let err = err.unwrap_or_else(|| "-".into()).replace(['\n', ' '], "_");
                writeln!(
                    out,
                    "opened {ok} {} {} {err}",
                    n - ok,
                    start.elapsed().as_millis()
                )?;
                held = Some(h);
            }
            Some("closes") => {
                let limit: u64 = w.get(1).context("millis")?.parse()?;
                let until = Instant::now() + Duration::from_millis(limit);
                let mut lines = Vec::new();
                if let Some(h) = &held {
                    while h.open.load(Ordering::Acquire) > 0 && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    for (i, c) in h.closes.iter().enumerate() {
                        let t = c.load(Ordering::Acquire);
                        if h.established[i].load(Ordering::Acquire) && t > 0 {
                            lines.push(format!("{i} {t}"));
                        }
                    }
                }
                let open = held.as_ref().map_or(0, |h| h.open.load(Ordering::Acquire));
                writeln!(out, "closes {} {open}", lines.len())?;
                for l in lines {
                    writeln!(out, "{l}")?;
                }
            }
            Some("drop") => {
                if let Some(mut h) = held.take() {
                    rt.block_on(h.tasks.shutdown());
                }
                writeln!(out, "dropped")?;
            }
            Some("quit") | None => break,
            Some(other) => bail!("unknown command {other}"),
        }
        out.flush()?;
    }
    Ok(())
}

fn parse_route(w: &[&str]) -> anyhow::Result<Route> {
    let port: u16 = w.get(1).context("port")?.parse()?;
    let tls = |fp: Option<&&str>| -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let fp = fp.context("fingerprint")?;
        Ok(Arc::new(jitgate::proxy::tcp::verify::client_config(
            None,
            Some(fp),
        )?))
    };
    Ok(match w.first().copied() {
        Some("direct") => Route::Direct { port },
        Some("haproxy") => Route::Haproxy {
            port,
            tls: tls(w.get(2))?,
        },
        Some("jitgate") => Route::Jitgate {
            port,
            tls: tls(w.get(2))?,
            secret: w.get(3).context("secret")?.to_string(),
        },
        _ => bail!("bad route {w:?}"),
    })
}

/// Sessions held open by the clients child.
struct Held {
    tasks: JoinSet<()>,
    closes: Arc<Vec<AtomicI64>>,
    established: Arc<Vec<AtomicBool>>,
    /// Established and not yet closed.
    open: Arc<AtomicUsize>,
}

async fn open_many(route: Route, n: usize, conc: usize) -> (Held, Option<String>) {
    let sem = Arc::new(Semaphore::new(conc));
    let closes: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let established: Arc<Vec<AtomicBool>> =
        Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let live = Arc::new(AtomicUsize::new(0));
    let first_err = Arc::new(Mutex::new(None::<String>));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let (route, closes, established, live, first_err) = (
            route.clone(),
            closes.clone(),
            established.clone(),
            live.clone(),
            first_err.clone(),
        );
        tasks.spawn(async move {
            let r = tokio::time::timeout(Duration::from_secs(30), async {
                let mut c = open(&route).await?;
                echo_tagged(&mut c, i as u32).await?;
                Ok::<_, anyhow::Error>(c)
            })
            .await;
            let mut c = match r {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    if let Ok(mut f) = first_err.lock() {
                        f.get_or_insert(format!("{e:#}"));
                    }
                    return;
                }
                Err(_) => {
                    if let Ok(mut f) = first_err.lock() {
                        f.get_or_insert("setup timed out".into());
                    }
                    return;
                }
            };
            established[i].store(true, Ordering::Release);
            live.fetch_add(1, Ordering::AcqRel);
            drop(permit);
            let t = wait_closed(&mut c).await;
            closes[i].store(t, Ordering::Release);
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
    // Every permit back: every session is established or has failed.
    let _ = sem.acquire_many(conc as u32).await;
    let err = first_err.lock().ok().and_then(|f| f.clone());
    (
        Held {
            tasks,
            closes,
            established,
            open: live,
        },
        err,
    )
}

/// The coordinator's handle on the clients child.
struct Clients {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

struct Opened {
    ok: usize,
    failed: usize,
    millis: u64,
    first_error: String,
}

impl Clients {
    fn spawn() -> anyhow::Result<Clients> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--role", "clients"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        Ok(Clients {
            child,
            stdin,
            stdout,
        })
    }

    fn ask(&mut self, cmd: &str) -> anyhow::Result<String> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.line()
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut l = String::new();
        ensure!(
            self.stdout.read_line(&mut l)? > 0,
            "the clients child exited"
        );
        Ok(l.trim_end().to_string())
    }

    fn open(&mut self, n: usize, route: &str) -> anyhow::Result<Opened> {
        let r = self.ask(&format!("open {n} {OPEN_CONCURRENCY} {route}"))?;
        let w: Vec<&str> = r.split_whitespace().collect();
        ensure!(
            w.first() == Some(&"opened") && w.len() == 5,
            "child said {r}"
        );
        Ok(Opened {
            ok: w[1].parse()?,
            failed: w[2].parse()?,
            millis: w[3].parse()?,
            first_error: w[4].to_string(),
        })
    }

    /// Close instants by session index, once all closed or `limit` passed.
    fn closes(&mut self, limit: Duration) -> anyhow::Result<(HashMap<u32, i64>, usize)> {
        let r = self.ask(&format!("closes {}", limit.as_millis()))?;
        let w: Vec<&str> = r.split_whitespace().collect();
        ensure!(
            w.first() == Some(&"closes") && w.len() == 3,
            "child said {r}"
        );
        let k: usize = w[1].parse()?;
        let mut m = HashMap::with_capacity(k);
        for _ in 0..k {
            let l = self.line()?;
            let (i, t) = l.split_once(' ').context("bad close line")?;
            m.insert(i.parse()?, t.parse()?);
        }
        Ok((m, w[2].parse()?))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn drop_all(&mut self) -> anyhow::Result<()> {
        let r = self.ask("drop")?;
        ensure!(r == "dropped", "child said {r}");
        Ok(())
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------- 1a, 1b

/// Per-session termination latencies in ms: (both closed, client, upstream).
#[derive(Default)]
struct Latencies {
    both: Vec<f64>,
    client: Vec<f64>,
    upstream: Vec<f64>,
    /// Revoke call response times.
    response: Vec<f64>,
    skipped: usize,
}

/// One session per short grant, left to expire; measured from `expires_at`.
fn expiry(
    rt: &tokio::runtime::Runtime,
    d: &BenchDaemon,
    tls: &Arc<rustls::ClientConfig>,
    up: &Upstream,
) -> anyhow::Result<Latencies> {
    let mut l = Latencies::default();
    for i in 0..ONE_SESSION_REPEATS + 2 {
        let g = d.grant(SHORT_GRANT)?;
        up.clear();
        let route = d.route(tls, &g);
        let idx = i as u32;
        let client = rt.block_on(async {
            let mut c = open(&route).await?;
            echo_tagged(&mut c, idx).await?;
            // Too close to the end to be sure the session was idle at expiry.
            if now_us() > g.expires_at_us - 50_000 {
                return Ok(None);
            }
            let t = tokio::time::timeout(Duration::from_secs(10), wait_closed(&mut c)).await?;
            Ok::<_, anyhow::Error>(Some(t))
        })?;
        let Some(tc) = client else {
            l.skipped += 1;
            continue;
        };
        let tu = up
            .wait_for(idx, Duration::from_secs(10))
            .context("the upstream end never closed after expiry")?;
        if i < 2 {
            continue; // warm-up
        }
        let (c, u) = (
            (tc - g.expires_at_us) as f64 / 1e3,
            (tu - g.expires_at_us) as f64 / 1e3,
        );
        l.client.push(c);
        l.upstream.push(u);
        l.both.push(c.max(u));
    }
    Ok(l)
}

/// One session per grant, ended by revoking the grant; measured from the
/// instant the revoke request is written.
fn revoke_one(
    rt: &tokio::runtime::Runtime,
    d: &BenchDaemon,
    tls: &Arc<rustls::ClientConfig>,
    up: &Upstream,
) -> anyhow::Result<Latencies> {
    let mut l = Latencies::default();
    for i in 0..ONE_SESSION_REPEATS + 2 {
        let g = d.grant("1h")?;
        up.clear();
        let route = d.route(tls, &g);
        let idx = i as u32;
        let mut c = rt.block_on(async {
            let mut c = open(&route).await?;
            echo_tagged(&mut c, idx).await?;
            Ok::<_, anyhow::Error>(c)
        })?;
        let watcher = rt.spawn(async move { wait_closed(&mut c).await });
        std::thread::sleep(Duration::from_millis(20));
        let r = d.revoke(&g.id)?;
        ensure!(
            r.sessions == 1,
            "revoke ended {} sessions, not 1",
            r.sessions
        );
        let tc =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), watcher).await })??;
        let tu = up
            .wait_for(idx, Duration::from_secs(10))
            .context("the upstream end never closed after revoke")?;
        if i < 2 {
            continue;
        }
        let (c, u) = ((tc - r.t0) as f64 / 1e3, (tu - r.t0) as f64 / 1e3);
        l.client.push(c);
        l.upstream.push(u);
        l.both.push(c.max(u));
        l.response.push((r.t1 - r.t0) as f64 / 1e3);
    }
    Ok(l)
}

// ---------------------------------------------------------------- 1c, 3

struct ManyRun {
    n: usize,
    per_session: Option<Dist>,
    last_ms: f64,
    response_ms: f64,
    not_closed: usize,
    kib_per_session: f64,
}

/// A fresh daemon filled with as many idle sessions under one grant as its
/// fd limit allows: RSS before and after, then one revoke ends them all.
fn revoke_many(clients: &mut Clients, up: &Upstream, run: usize) -> anyhow::Result<ManyRun> {
    let d = BenchDaemon::start(up.jitgate)?;
    let pid = d.pid();
    // Warm up: TLS, the store, the runtime's threads and allocator arenas.
    let warm = d.grant("1h")?;
    let fp = &d.fingerprint;
    let o = clients.open(64, &format!("jitgate {} {fp} {}", d.tunnel, warm.secret))?;
    ensure!(o.ok == 64, "warm-up sessions failed: {}", o.first_error);
    d.revoke(&warm.id)?;
    clients.closes(Duration::from_secs(10))?;
    wait_idle(pid, Duration::from_millis(500), Duration::from_secs(60));

    let fds = open_fds(pid);
    let n = ((fd_limit(pid) - fds - FD_MARGIN) / 2).min(MAX_SESSIONS);
    let g = d.grant("1h")?;
    let before = rss_kib(pid).unwrap_or(0);
    up.clear();
    let cpu_open = cpu_split(pid);
    let o = clients.open(n, &format!("jitgate {} {fp} {}", d.tunnel, g.secret))?;
    let cpu_open = cpu_since(pid, cpu_open);
    ensure!(
        o.ok > 0,
        "no session could be opened: {} failed, first error {}",
        o.failed,
        o.first_error
    );
    if o.failed > 0 {
        eprintln!(
            "   {} of {n} sessions failed to open; first error: {}",
            o.failed, o.first_error
        );
    }
    let settled = wait_idle(pid, Duration::from_millis(500), Duration::from_secs(120));
    let after = rss_kib(pid).unwrap_or(0);
    let kib = (after as f64 - before as f64) / o.ok as f64;
    eprintln!(
        "   run {run}: {} sessions open in {:.1} s ({:.0}/s, daemon {cpu_open}), daemon idle {:.1} s later; daemon had {fds} fds before, limit {}; RSS {:.1} -> {:.1} MiB = {kib:.2} KiB/session (RssAnon {} KiB)",
        o.ok,
        o.millis as f64 / 1e3,
        o.ok as f64 / (o.millis as f64 / 1e3),
        settled.as_secs_f64(),
        fd_limit(pid),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        read_status_kib(pid, "RssAnon:").unwrap_or(0),
    );

    let me = std::process::id();
    let cpu = (cpu_split(pid), cpu_split(clients.pid()), cpu_split(me));
    let r = d.revoke(&g.id)?;
    let (client, still_open) = clients.closes(Duration::from_secs(30))?;
    let upstream = up.wait_count(o.ok, Duration::from_secs(30));
    let cpu = format!(
        "daemon {}, clients child {}, upstream (this process) {}",
        cpu_since(pid, cpu.0),
        cpu_since(clients.pid(), cpu.1),
        cpu_since(me, cpu.2)
    );
    let mut per = Vec::with_capacity(client.len());
    let mut not_closed = still_open;
    for (idx, tc) in &client {
        match upstream.get(idx) {
            Some(tu) => per.push((tc.max(tu) - r.t0) as f64 / 1e3),
            None => not_closed += 1,
        }
    }
    let last_ms = per.iter().copied().fold(0.0, f64::max);
    let run = ManyRun {
        n: o.ok,
        per_session: dist(per),
        last_ms,
        response_ms: (r.t1 - r.t0) as f64 / 1e3,
        not_closed,
        kib_per_session: kib,
    };
    eprintln!(
        "          revoke: {} sessions reported terminated; each closed p50/p99/max {}; last socket {} ms; response {} ms; not closed {}; CPU from the revoke to the last close: {cpu}",
        r.sessions,
        fmt_dist(run.per_session),
        ms(run.last_ms),
        ms(run.response_ms),
        run.not_closed
    );
    Ok(run)
}

/// How to start a fresh HAProxy for one idle-memory run.
struct HaproxySetup<'a> {
    bin: &'a Path,
    dir: &'a Path,
    pem: &'a Path,
    /// Of the certificate in `pem`.
    fingerprint: &'a str,
}

/// HAProxy's RSS per idle TLS connection (each relaying to an upstream).
fn haproxy_idle(
    clients: &mut Clients,
    hs: &HaproxySetup,
    up: &Upstream,
    n: usize,
    run: usize,
) -> anyhow::Result<f64> {
    let h = Haproxy::start(hs.bin, hs.dir, hs.pem, up.haproxy)?;
    let pid = h.pid();
    let route = format!("haproxy {} {}", h.port, hs.fingerprint);
    let o = clients.open(64, &route)?;
    ensure!(o.ok == 64, "warm-up connections failed: {}", o.first_error);
    clients.drop_all()?;
    wait_idle(pid, Duration::from_millis(500), Duration::from_secs(30));
    let before = rss_kib(pid).unwrap_or(0);
    let o = clients.open(n, &route)?;
    ensure!(o.ok > 0, "no HAProxy connection: {}", o.first_error);
    wait_idle(pid, Duration::from_millis(500), Duration::from_secs(60));
    let after = rss_kib(pid).unwrap_or(0);
    let kib = (after as f64 - before as f64) / o.ok as f64;
    eprintln!(
        "   run {run}: HAProxy {} connections ({} failed) open in {:.1} s; RSS {:.1} -> {:.1} MiB = {kib:.2} KiB/connection",
        o.ok,
        o.failed,
        o.millis as f64 / 1e3,
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    clients.drop_all()?;
    Ok(kib)
}

// ---------------------------------------------------------------- 2, 4

#[derive(Clone, Copy, Debug)]
enum Dir {
    Upload,
    Download,
}

/// MB/s (10^6 bytes) of `TRANSFER_BYTES` split over `streams` connections,
/// timed from the first byte to the last one acknowledged (upload: the sink
/// reports the count; download: EOF after the last byte).
async fn transfer(route: &Route, dir: Dir, streams: usize) -> anyhow::Result<f64> {
    let per = TRANSFER_BYTES / streams as u64;
    let mut conns = Vec::with_capacity(streams);
    for _ in 0..streams {
        conns.push(open(route).await?);
    }
    let start = Instant::now();
    let mut set = JoinSet::new();
    for mut c in conns {
        set.spawn(async move {
            match dir {
                Dir::Upload => {
                    c.write_u8(b'U').await?;
                    c.write_u64(per).await?;
                    let mut left = per;
                    while left > 0 {
                        let k = left.min(ZEROS.len() as u64) as usize;
                        c.write_all(&ZEROS[..k]).await?;
                        left -= k as u64;
                    }
                    c.flush().await?;
                    let got = c.read_u64().await?;
                    ensure!(got == per, "sink got {got} of {per} bytes");
                }
                Dir::Download => {
                    c.write_u8(b'D').await?;
                    c.write_u64(per).await?;
                    c.flush().await?;
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut got = 0u64;
                    while got < per {
                        match c.read(&mut buf).await? {
                            0 => break,
                            n => got += n as u64,
                        }
                    }
                    ensure!(got == per, "got {got} of {per} bytes");
                }
            }
            let _ = c.shutdown().await;
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(TRANSFER_BYTES as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Connections per second, each one connect, handshake (and tunnel OK),
/// 1-byte echo and close, `SETUP_CLIENTS` at a time for `SETUP_SECONDS`;
/// also the connections made and failed.
async fn setup_rate(route: &Route) -> (f64, usize, usize) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(SETUP_SECONDS);
    let mut set = JoinSet::new();
    for _ in 0..SETUP_CLIENTS {
        let (route, ok, failed) = (route.clone(), ok.clone(), failed.clone());
        set.spawn(async move {
            while Instant::now() < until {
                let one = async {
                    let mut c = open(&route).await?;
                    echo_tagged(&mut c, u32::MAX).await?;
                    c.shutdown().await?;
                    Ok::<_, anyhow::Error>(())
                };
                match tokio::time::timeout(Duration::from_secs(10), one).await {
                    Ok(Ok(())) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while set.join_next().await.is_some() {}
    let n = ok.load(Ordering::Relaxed);
    (
        n as f64 / start.elapsed().as_secs_f64(),
        n,
        failed.load(Ordering::Relaxed),
    )
}

/// Protocol, cipher suite and key exchange a route negotiates.
async fn tls_params(port: u16, tls: &Arc<rustls::ClientConfig>) -> String {
    match tls_connect(port, tls).await {
        Ok(mut s) => {
            let c = s.get_ref().1;
            let p = format!(
                "{:?} {:?} {:?}",
                c.protocol_version(),
                c.negotiated_cipher_suite().map(|s| s.suite()),
                c.negotiated_key_exchange_group().map(|g| g.name())
            );
            let _ = s.shutdown().await;
            p
        }
        Err(e) => format!("handshake failed: {e:#}"),
    }
}

// ---------------------------------------------------------------- the run

/// Waits until the proxies are idle so one measurement does not pay for the
/// previous one's tail (e.g. the daemon's audit writer).
fn settle(pids: &[u32]) {
    for &p in pids {
        wait_idle(p, Duration::from_millis(200), Duration::from_secs(30));
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn cell(v: Option<f64>, digits: usize, have_haproxy: bool) -> String {
    match v {
        Some(v) => format!("{v:.digits$}"),
        None if !have_haproxy => NOT_INSTALLED.into(),
        None => "failed".into(),
    }
}

fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tmp = tempfile::Builder::new()
        .prefix("jitgate-bench-tunnel-")
        .tempdir()?;
    let up = rt.block_on(Upstream::start())?;
    let haproxy_bin = find_haproxy();
    let have_haproxy = haproxy_bin.is_some();
    let d0 = BenchDaemon::start(up.jitgate)?;
    let tls = d0.tls()?;
    // HAProxy serves the first daemon's certificate for the whole run.
    let fingerprint = d0.fingerprint.clone();
    let pem = tmp.path().join("combined.pem");
    d0.combined_pem(&pem)?;
    let hap = match &haproxy_bin {
        Some(b) => Some(Haproxy::start(b, tmp.path(), &pem, up.haproxy)?),
        None => {
            eprintln!("{NOT_INSTALLED}");
            None
        }
    };
    let mut pids = vec![d0.pid()];
    pids.extend(hap.as_ref().map(Haproxy::pid));
    eprintln!("jitgate TLS: {}", rt.block_on(tls_params(d0.tunnel, &tls)));
    if let Some(h) = &hap {
        eprintln!(
            "HAProxy TLS: {} (maxconn {})",
            rt.block_on(tls_params(h.port, &tls)),
            haproxy_maxconn()
        );
    }

    eprintln!("1a: expiry of one session, {ONE_SESSION_REPEATS} grants of {SHORT_GRANT}");
    let exp = expiry(&rt, &d0, &tls, &up)?;
    eprintln!("1b: revoke of one session, {ONE_SESSION_REPEATS} grants");
    settle(&pids);
    let rev = revoke_one(&rt, &d0, &tls, &up)?;

    eprintln!("2: throughput, {} MiB per transfer", TRANSFER_BYTES >> 20);
    let g = d0.grant("1h")?;
    let mut routes = vec![("jitgate", d0.route(&tls, &g))];
    if let Some(h) = &hap {
        routes.push(("haproxy", h.route(&tls)));
    }
    routes.push(("direct", Route::Direct { port: up.direct }));
    let cases = [
        (Dir::Upload, 1),
        (Dir::Upload, 8),
        (Dir::Download, 1),
        (Dir::Download, 8),
    ];
    let mut tput: HashMap<(usize, &str), Vec<f64>> = HashMap::new();
    for rep in 0..TRANSFER_REPEATS {
        for (ci, (dir, streams)) in cases.iter().enumerate() {
            for (name, route) in &routes {
                settle(&pids);
                match rt.block_on(transfer(route, *dir, *streams)) {
                    Ok(v) => tput.entry((ci, name)).or_default().push(v),
                    Err(e) => eprintln!("   {name} {dir:?} x{streams} rep {rep} failed: {e:#}"),
                }
            }
        }
        eprintln!("   rep {rep} done");
    }

    eprintln!("4: setup rate, {SETUP_CLIENTS} clients x {SETUP_SECONDS} s, no TLS resumption");
    let mut no_resume = (*tls).clone();
    no_resume.resumption = rustls::client::Resumption::disabled();
    let no_resume = Arc::new(no_resume);
    let mut setup_routes = vec![("jitgate", d0.route(&no_resume, &g), Some(d0.pid()))];
    if let Some(h) = &hap {
        setup_routes.push(("haproxy", h.route(&no_resume), Some(h.pid())));
    }
    setup_routes.push(("direct", Route::Direct { port: up.direct }, None));
    let mut setup: HashMap<&str, Vec<f64>> = HashMap::new();
    for rep in 0..SETUP_REPEATS {
        for (name, route, pid) in &setup_routes {
            settle(&pids);
            let before = pid.map(cpu_split);
            let (rate, conns, failed) = rt.block_on(setup_rate(route));
            // The tail of the work (e.g. audit writes) counts too.
            settle(&pids);
            let cpu = match (pid, before) {
                (Some(p), Some(b)) => {
                    let (u, s) = cpu_split(*p);
                    let conns = conns.max(1) as f64;
                    format!(
                        "; proxy CPU {:.0} µs/conn (user {:.0} + sys {:.0})",
                        ((u - b.0) + (s - b.1)) as f64 * 1e4 / conns,
                        (u - b.0) as f64 * 1e4 / conns,
                        (s - b.1) as f64 * 1e4 / conns
                    )
                }
                _ => String::new(),
            };
            eprintln!("   rep {rep} {name}: {rate:.0} conn/s, {failed} failed{cpu}");
            setup.entry(name).or_default().push(rate);
        }
    }
    drop(hap);
    drop(d0);

    eprintln!("1c + 3: one revoke ending every session of a full daemon; RSS per idle session");
    let mut clients = Clients::spawn()?;
    let mut many = Vec::new();
    for run in 0..MANY_RUNS {
        many.push(revoke_many(&mut clients, &up, run)?);
    }
    let n = many.iter().map(|r| r.n).min().unwrap_or(0);
    let mut hap_kib = Vec::new();
    if let Some(bin) = &haproxy_bin {
        let hs = HaproxySetup {
            bin,
            dir: tmp.path(),
            pem: &pem,
            fingerprint: &fingerprint,
        };
        let n_h = n.min(haproxy_maxconn() - 16);
        for run in 0..MANY_RUNS {
            hap_kib.push(haproxy_idle(&mut clients, &hs, &up, n_h, run)?);
        }
    }
    drop(clients);

    // ------------------------------------------------------------ the table
    let med = |f: &dyn Fn(&ManyRun) -> f64| median(many.iter().map(f).collect());
    let many_dist = Dist {
        p50: med(&|r| r.per_session.map_or(f64::NAN, |d| d.p50)).unwrap_or(f64::NAN),
        p99: med(&|r| r.per_session.map_or(f64::NAN, |d| d.p99)).unwrap_or(f64::NAN),
        max: med(&|r| r.per_session.map_or(f64::NAN, |d| d.max)).unwrap_or(f64::NAN),
    };
    let lasts: Vec<String> = many.iter().map(|r| ms(r.last_ms)).collect();
    let not_closed: usize = many.iter().map(|r| r.not_closed).sum();
    let dash = "–".to_string();

    let mut rows: Vec<[String; 7]> = Vec::new();
    let one = |rows: &mut Vec<[String; 7]>, id: &str, what: String, d: Option<Dist>, goal: &str| {
        rows.push([
            id.into(),
            what,
            fmt_dist(d),
            dash.clone(),
            dash.clone(),
            dash.clone(),
            goal.into(),
        ]);
    };
    let nexp = exp.both.len();
    one(
        &mut rows,
        "1a",
        format!(
            "expiry → both sockets closed, 1 session, p50 / p99 / max (n={nexp}, {} skipped)",
            exp.skipped
        ),
        dist(exp.both.clone()),
        "p99 ≤ 1 ms",
    );
    one(
        &mut rows,
        "1a",
        "expiry → client saw EOF".into(),
        dist(exp.client.clone()),
        "",
    );
    one(
        &mut rows,
        "1a",
        "expiry → upstream saw EOF".into(),
        dist(exp.upstream.clone()),
        "",
    );
    one(
        &mut rows,
        "1b",
        format!(
            "revoke sent → both sockets closed, 1 session (n={})",
            rev.both.len()
        ),
        dist(rev.both.clone()),
        "p99 ≤ 1 ms",
    );
    one(
        &mut rows,
        "1b",
        "revoke sent → client saw EOF".into(),
        dist(rev.client.clone()),
        "",
    );
    one(
        &mut rows,
        "1b",
        "revoke sent → upstream saw EOF".into(),
        dist(rev.upstream.clone()),
        "",
    );
    one(
        &mut rows,
        "1b",
        "revoke call response time, 1 session".into(),
        dist(rev.response.clone()),
        "",
    );
    one(
        &mut rows,
        "1c",
        format!(
            "revoke sent → each session closed, N={n} under one grant (median of {} runs)",
            many.len()
        ),
        Some(many_dist),
        "",
    );
    rows.push([
        "1c".into(),
        format!(
            "revoke sent → last of the 2×N sockets closed, ms (runs: {})",
            lasts.join(", ")
        ),
        med(&|r| r.last_ms).map_or("–".into(), |v| format!("{} ms", ms(v))),
        dash.clone(),
        dash.clone(),
        dash.clone(),
        "all 10,000 ≤ 100 ms".into(),
    ]);
    rows.push([
        "1c".into(),
        format!("revoke call response time, N sessions (sessions not closed: {not_closed})"),
        med(&|r| r.response_ms).map_or("–".into(), |v| format!("{} ms", ms(v))),
        dash.clone(),
        dash.clone(),
        dash.clone(),
        "".into(),
    ]);
    for (ci, (dir, streams)) in cases.iter().enumerate() {
        let m = |name: &str| tput.get(&(ci, name)).and_then(|v| median(v.clone()));
        let (j, h, d) = (m("jitgate"), m("haproxy"), m("direct"));
        let what = match (dir, streams) {
            (Dir::Upload, 1) => "upload, 1 stream × 512 MiB, MB/s (median of 5)".to_string(),
            (Dir::Download, 1) => "download, 1 stream × 512 MiB, MB/s".to_string(),
            (Dir::Upload, s) => format!("upload, {s} streams × {} MiB, MB/s", 512 / s),
            (Dir::Download, s) => format!("download, {s} streams × {} MiB, MB/s", 512 / s),
        };
        rows.push([
            "2".into(),
            what,
            cell(j, 0, true),
            cell(h, 0, have_haproxy),
            cell(d, 0, true),
            ratio(j, h),
            "".into(),
        ]);
    }
    let jk = med(&|r| r.kib_per_session);
    let hk = median(hap_kib.clone());
    rows.push([
        "3".into(),
        format!("RSS per idle session, N={n}, KiB (median of {} runs; HAProxy: TLS connection + backend)", many.len()),
        cell(jk, 1, true),
        cell(hk, 1, have_haproxy),
        dash.clone(),
        ratio(jk, hk),
        "≤ 8 KiB (HAProxy ~18)".into(),
    ]);
    let sm = |name: &str| setup.get(name).and_then(|v| median(v.clone()));
    let (sj, sh, sd) = (sm("jitgate"), sm("haproxy"), sm("direct"));
    rows.push([
        "4".into(),
        format!("connection setup: full TLS handshake (+ tunnel hello/OK) + 1-byte echo + close, {SETUP_CLIENTS} clients, conn/s (median of {SETUP_REPEATS} × {SETUP_SECONDS} s; direct: plain TCP)"),
        cell(sj, 0, true),
        cell(sh, 0, have_haproxy),
        cell(sd, 0, true),
        ratio(sj, sh),
        "".into(),
    ]);

    println!();
    println!("| # | measurement | jitgate | HAProxy | direct TCP | jitgate/HAProxy | goal |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    println!();
    println!(
        "N = {n}: the daemon holds 2 fds per session (client + upstream) plus its own, under a hard limit of {} open files per process, so 10,000 sessions do not fit; clients ran in a child process, the upstream ends in the coordinator.",
        fd_limit(std::process::id())
    );
    if have_haproxy {
        println!(
            "HAProxy 'maxconn {}' instead of 30000: with 30000 it asks for 60,017 fds and refuses to start under that limit.",
            haproxy_maxconn()
        );
    }
    println!("Total bench time {:.0} s.", started.elapsed().as_secs_f64());
    Ok(())
}
