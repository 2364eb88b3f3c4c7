//! The real `jitgate` binary as a child process on free ports, with a config
//! written for the test, plus a tiny HTTP client for asserting on the API.

use super::free_port;
use super::wait::{OutputWithin, HANG};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_jitgate");

/// Tokens of the test users; their hashes go into the generated config.
pub const ALICE: &str = "jgt_test_alice";
pub const BOB: &str = "jgt_test_bob";
pub const CAROL: &str = "jgt_test_carol";
pub const ERIN: &str = "jgt_test_erin";
pub const DAVE: &str = "jgt_test_dave";

pub fn sha(t: &str) -> String {
    hex::encode(jitgate::secrets::sha256(t.as_bytes()))
}

/// Users: alice, bob (group oncall, requesters), carol and erin (group leads,
/// approvers), dave (admin). Policies: `oncall` (1 approval), `two-man`
/// (2 approvals, targets two-*), `auto` (0 approvals, targets auto-*).
pub fn base_config(
    data_dir: &Path,
    admin_port: u16,
    metrics_port: u16,
    store_url: Option<&str>,
    extra: &str,
) -> String {
    base_config_with_server(data_dir, admin_port, metrics_port, store_url, "", extra)
}

/// `base_config` with `server_keys` (e.g. `request_ttl = "2s"`) appended to
/// its `[server]` section.
pub fn base_config_with_server(
    data_dir: &Path,
    admin_port: u16,
    metrics_port: u16,
    store_url: Option<&str>,
    server_keys: &str,
    extra: &str,
) -> String {
    let store = store_url
        .map(|u| format!("[store]\nurl = \"{u}\"\n"))
        .unwrap_or_default();
    let instance = if server_keys.contains("instance") {
        ""
    } else {
        "instance = \"test\""
    };
    format!(
        r#"
[server]
data_dir = "{data}"
{instance}
{server_keys}
{store}
[admin]
listen = "127.0.0.1:{admin_port}"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[groups]
oncall = ["alice", "bob"]
leads = ["carol", "erin"]

[[users]]
name = "alice"
token_sha256 = "{a}"

[[users]]
name = "bob"
token_sha256 = "{b}"
ssh_keys = ["{bob_ssh}"]

[[users]]
name = "carol"
token_sha256 = "{c}"

[[users]]
name = "erin"
token_sha256 = "{e}"

[[users]]
name = "dave"
token_sha256 = "{d}"
admin = true

[[targets]]
name = "cache"
kind = "tcp"
address = "127.0.0.1:6379"

[[targets]]
name = "two-db"
kind = "tcp"
address = "127.0.0.1:6380"

[[targets]]
name = "auto-web"
kind = "tcp"
address = "127.0.0.1:6381"

[[policies]]
name = "oncall"
requesters = ["group:oncall", "carol"]
targets = ["cache"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "2h"
default_duration = "30m"
require_reason = true
warn_before = ["1m"]

[[policies]]
name = "two-man"
requesters = ["group:oncall"]
targets = ["two-*"]
approvers = ["group:leads"]
approvals_required = 2
max_duration = "1h"

[[policies]]
name = "auto"
requesters = ["group:oncall"]
targets = ["auto-*"]
approvals_required = 0
max_duration = "10m"
{extra}
"#,
        data = data_dir.display(),
        a = sha(ALICE),
        b = sha(BOB),
        c = sha(CAROL),
        e = sha(ERIN),
        d = sha(DAVE),
        bob_ssh = include_str!("../fixtures/ssh/bob_ed25519.pub").trim(),
    )
}

/// Policies the front-end helpers share: `warn-*` targets warn 3 s before
/// the end, `few-*` targets allow one session per grant.
pub const WARN_AND_FEW_POLICIES: &str = r#"
[[policies]]
name = "warn"
requesters = ["group:oncall"]
targets = ["warn-*"]
approvals_required = 0
max_duration = "10m"
warn_before = ["3s"]

[[policies]]
name = "few"
requesters = ["group:oncall"]
targets = ["few-*"]
approvals_required = 0
max_duration = "10m"
max_sessions_per_grant = 1
"#;

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub admin_port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
    /// Extra `serve` arguments (e.g. `--log-format json`) and environment (e.g. a password_env).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
    /// Every test that starts a daemon is bounded as a whole.
    _watchdog: super::wait::Watchdog,
}

impl Daemon {
    /// Starts a daemon on the base config (SQLite in a temp dir).
    pub fn start() -> Daemon {
        Self::start_with(None, "")
    }

    pub fn start_with(store_url: Option<&str>, extra: &str) -> Daemon {
        Self::start_with_server(store_url, "", extra)
    }

    /// Like `start_with`, with `server_keys` appended to the `[server]` section.
    pub fn start_with_server(store_url: Option<&str>, server_keys: &str, extra: &str) -> Daemon {
        let mut d = Self::configured(store_url, server_keys, extra);
        d.spawn();
        d
    }

    /// Like `start_with_server`, with extra environment for the process.
    pub fn start_with_env(
        store_url: Option<&str>,
        server_keys: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut d = Self::configured(store_url, server_keys, extra);
        d.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        d.spawn();
        d
    }

    /// Writes the config but starts nothing, so a test can set `args` and
    /// `env` first, then `spawn` (or `launch` to watch it become ready).
    pub fn configured(store_url: Option<&str>, server_keys: &str, extra: &str) -> Daemon {
        let tmp = tempfile::Builder::new()
            .prefix("jitgate-test-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let (admin_port, metrics_port) = (free_port(), free_port());
        let config = dir.join("jitgate.toml");
        std::fs::write(
            &config,
            base_config_with_server(
                &dir.join("data"),
                admin_port,
                metrics_port,
                store_url,
                server_keys,
                extra,
            ),
        )
        .expect("write config");
        Daemon {
            child: None,
            dir,
            config,
            admin_port,
            metrics_port,
            log: PathBuf::new(),
            args: Vec::new(),
            env: Vec::new(),
            _tmp: Some(tmp),
            _watchdog: super::wait::Watchdog::start(
                format!(
                    "test {}",
                    std::thread::current().name().unwrap_or("(unnamed)")
                ),
                super::wait::TEST_LIMIT,
            ),
        }
    }

    /// (Re)starts the process on the same config and data.
    pub fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    /// Starts the process without waiting for it to become ready.
    pub fn launch(&mut self) {
        let n = std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0);
        self.log = self.dir.join(format!("daemon-{n}.log"));
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = Command::new(BIN)
            .args(["serve", "--config", &self.config.display().to_string()])
            .args(&self.args)
            .env("RUST_LOG", "info,jitgate=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(log.try_clone().expect("dup")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn jitgate");
        self.child = Some(child);
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("jitgate exited early with {st}: {}", self.logs());
                }
            }
            if let Ok(r) = self.get("/readyz", None) {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("jitgate did not become ready: {}", self.logs());
    }

    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            let mut files: Vec<_> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect();
            files.sort();
            for f in files {
                all.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
            }
        }
        all
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("jitgate did not exit after SIGTERM: {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> std::io::Result<Resp> {
        http(self.admin_port, "GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> std::io::Result<Resp> {
        http(self.admin_port, "POST", path, token, Some(body))
    }

    /// POSTs a request with reason "INC-7" and asserts it was created (201).
    pub fn create_request(&self, token: &str, target: &str, duration: &str) -> serde_json::Value {
        let body = serde_json::json!({"target": target, "duration": duration, "reason": "INC-7"});
        let r = self
            .post("/v1/requests", Some(token), &body.to_string())
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()
    }

    /// An auto-approved grant for `token`'s user and its connect secret.
    pub fn grant_with_secret(&self, token: &str, target: &str, duration: &str) -> (String, String) {
        let r = self.create_request(token, target, duration);
        let gid = r["grant"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("not auto-approved: {r}"))
            .to_string();
        let s = self
            .post(&format!("/v1/grants/{gid}/secret"), Some(token), "")
            .unwrap();
        assert_eq!(s.status, 200, "{}", s.body);
        (gid, s.json()["secret"].as_str().unwrap().to_string())
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, token: &str, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("JITGATE_URL", self.url())
            .env("JITGATE_TOKEN", token)
            .output_within(HANG)
    }

    pub fn metrics(&self) -> String {
        http(self.metrics_port, "GET", "/metrics", None, None)
            .map(|r| r.body)
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let logs = self.logs();
        if !logs.contains("panicked") {
            return;
        }
        // A second panic while a failed test unwinds would abort the whole
        // test binary and hide every other result: print instead.
        if std::thread::panicking() {
            eprintln!("the daemon panicked as well:\n{logs}");
        } else {
            panic!("the daemon panicked:\n{logs}");
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A deliberately plain HTTP/1.1 client (Connection: close) so tests see
/// exactly what the server sends.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<Resp> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Resp { status, body })
}
