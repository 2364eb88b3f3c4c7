//! Private PostgreSQL clusters: initdb in a temp dir, SCRAM auth, a free
//! port on 127.0.0.1.
//!
//! Most tests share one cluster per test binary ([`PgCluster::shared`]) and
//! keep apart by database and role: initdb and a server start cost seconds
//! each, and a binary used to start one per test. A test that stops the
//! server (a store outage) takes its own with [`PgCluster::start`].

use super::{e2e_skip, free_port};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct PgCluster {
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    /// The shared cluster's server runs under a small shell that stops it
    /// and removes its directory when this pipe closes, which happens when
    /// the test binary exits however it exits (statics are never dropped).
    guard: Option<ChildStdin>,
}

fn find_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("JITGATE_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// Says loudly that a test is skipped (or fails it under JITGATE_E2E=require)
/// when the server binaries are missing.
fn bin_or_skip() -> Option<PathBuf> {
    let bin = find_bin();
    if bin.is_none() {
        e2e_skip("PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin");
    }
    bin
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root; run it as `postgres` (or `nobody`).
fn run_as() -> Option<&'static str> {
    if !is_root() {
        return None;
    }
    let has = |u: &str| {
        Command::new("id")
            .arg(u)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    Some(if has("postgres") {
        "postgres"
    } else {
        "nobody"
    })
}

/// The command line that runs a PostgreSQL tool as the cluster's owner.
fn argv(bin: &Path, tool: &str) -> Vec<OsString> {
    let mut v: Vec<OsString> = Vec::new();
    if let Some(user) = run_as() {
        v.push("setpriv".into());
        v.push(format!("--reuid={user}").into());
        v.push(format!("--regid={user}").into());
        v.push("--clear-groups".into());
        v.push("--".into());
    }
    v.push(bin.join(tool).into());
    v
}

fn command(bin: &Path, tool: &str) -> Command {
    let v = argv(bin, tool);
    let mut c = Command::new(&v[0]);
    c.args(&v[1..]);
    c
}

/// Stops the server with a fast shutdown once stdin reaches EOF (the test
/// binary exited), then removes the cluster's directory.
const GUARDIAN: &str = r#"trap '' INT TERM; "$@" & pid=$!; read _ || true; kill -INT "$pid"; wait "$pid"; rm -rf "$JITGATE_PG_DIR""#;

impl PgCluster {
    /// Starts a cluster, or returns None (after saying so loudly) when the
    /// PostgreSQL server binaries are missing and JITGATE_E2E is not "require".
    /// Use it only to stop and restart the server; everything else takes
    /// [`PgCluster::shared`].
    pub fn start() -> Option<PgCluster> {
        Self::start_inner(false)
    }

    /// The cluster every test of this binary shares, started on first use.
    /// Tests keep apart with their own database ([`Self::create_db`]).
    pub fn shared() -> Option<&'static PgCluster> {
        static SHARED: OnceLock<PgCluster> = OnceLock::new();
        bin_or_skip()?;
        // Started outside the cell's lock would race; inside it, a test
        // that panics while starting leaves the cell empty for the next.
        Some(
            SHARED.get_or_init(|| {
                Self::start_inner(true).expect("the PostgreSQL binaries were found")
            }),
        )
    }

    /// Another cluster for the rest of this test binary's life, stopped
    /// when the binary exits as the shared one is (for a test that changes
    /// the server's settings).
    pub fn own() -> Option<&'static PgCluster> {
        Some(Box::leak(Box::new(Self::start_inner(true)?)))
    }

    fn start_inner(shared: bool) -> Option<PgCluster> {
        let bin = bin_or_skip()?;
        let dir = tempfile::Builder::new()
            .prefix("jitgate-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        let password = format!("pw{}", rand_suffix());
        std::fs::write(&pwfile, &password).expect("write pwfile");
        if let Some(user) = run_as() {
            let st = Command::new("chown")
                .args(["-R", &format!("{user}:"), &dir.path().display().to_string()])
                .status()
                .expect("chown");
            assert!(st.success(), "chown of the test cluster dir failed");
        }
        let out = command(&bin, "initdb")
            .args([
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                &pwfile.display().to_string(),
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut c = PgCluster {
            port: free_port(),
            password,
            dir,
            bin,
            child: None,
            guard: None,
        };
        c.spawn_server(shared);
        Some(c)
    }

    fn spawn_server(&mut self, shared: bool) {
        let data = self.dir.path().join("data");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log");
        let mut cmd = if shared {
            let mut c = Command::new("sh");
            c.args(["-c", GUARDIAN, "sh"])
                .args(argv(&self.bin, "postgres"))
                .env("JITGATE_PG_DIR", self.dir.path())
                .stdin(Stdio::piped());
            c
        } else {
            command(&self.bin, "postgres")
        };
        let mut child = cmd
            .args([
                "-D",
                &data.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("unix_socket_directories={}", self.dir.path().display()),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=500",
                "-c",
                "password_encryption=scram-sha-256",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start postgres");
        self.guard = child.stdin.take();
        self.child = Some(child);
        self.wait_ready();
    }

    /// Stops the server (fast shutdown: clients are disconnected), as an
    /// outage of the store would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the cluster is running");
        self.spawn_server(false);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let ok = Command::new(self.bin.join("pg_isready"))
                    .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        panic!("postgres did not become ready on port {}: {log}", self.port);
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// A tool of the same PostgreSQL installation (pgbench, pg_isready...).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs SQL as the superuser, directly (not through the proxy); returns
    /// the unaligned, tuples-only output.
    pub fn admin_sql(&self, sql: &str) -> String {
        self.admin_sql_in("postgres", sql)
    }

    /// [`Self::admin_sql`] in another database.
    pub fn admin_sql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Turns TLS on (a reload, no restart) with a fresh self-signed
    /// certificate for 127.0.0.1; returns the certificate's PEM, the CA a
    /// verifying client needs.
    pub fn enable_tls(&self) -> String {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("a certificate");
        let data = self.dir.path().join("data");
        let (crt, key) = (data.join("server.crt"), data.join("server.key"));
        std::fs::write(&crt, cert.cert.pem()).expect("write server.crt");
        std::fs::write(&key, cert.key_pair.serialize_pem()).expect("write server.key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        if let Some(user) = run_as() {
            for f in [&crt, &key] {
                let st = Command::new("chown")
                    .args([&format!("{user}:"), &f.display().to_string()])
                    .status()
                    .expect("chown");
                assert!(st.success(), "chown of {} failed", f.display());
            }
        }
        self.admin_sql("ALTER SYSTEM SET ssl = on");
        self.admin_sql("SELECT pg_reload_conf()");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.admin_sql("SHOW ssl").trim() != "on" {
            assert!(std::time::Instant::now() < until, "ssl did not turn on");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        cert.cert.pem()
    }

    /// Creates a fresh database so tests sharing a cluster stay independent.
    /// Names are per test: two tests of one binary must not pick the same.
    pub fn create_db(&self, name: &str) -> String {
        self.admin_sql(&format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM-like fast shutdown via pg_ctl would need the same user; kill is fine for a throwaway cluster.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", n, std::process::id())
}
