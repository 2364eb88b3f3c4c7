//! The TCP tunnel under test: a daemon with a tunnel listener, real upstream
//! servers, the real `jitgate connect`, and a raw tunnel client for cases
//! `connect` would never produce (bad secrets, hostile handshakes).

use super::daemon::{Daemon, BIN};
use super::free_port;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Polls `ok` for up to 60 s: a hang bound, not a latency check (a full
/// run on a loaded 2-core machine once took over 20 s to start a psql
/// child and see its first rows).
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn serve(each: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || each(s))
                .unwrap();
        }
    });
    port
}

/// Echoes every byte back until EOF.
pub fn echo_server() -> u16 {
    serve(|mut s| {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    })
}

/// Reads to EOF, then answers "got N bytes" and closes: only works if the
/// client's half-close reached it while its own write side stayed open.
pub fn count_server() -> u16 {
    serve(|mut s| {
        let mut all = Vec::new();
        if s.read_to_end(&mut all).is_ok() {
            let _ = write!(s, "got {} bytes", all.len());
        }
    })
}

/// Accepts and closes at once.
pub fn closing_server() -> u16 {
    serve(|s| {
        let _ = s.shutdown(Shutdown::Both);
    })
}

/// Targets (auto-approved by the base config's `auto` policy unless named
/// otherwise) and extra policies for the tunnel tests, plus the listener.
#[derive(Clone)]
pub struct Upstreams {
    pub echo: u16,
    pub count: u16,
    pub closing: u16,
    pub refused: u16,
}

impl Upstreams {
    pub fn start() -> Upstreams {
        Upstreams {
            echo: echo_server(),
            count: count_server(),
            closing: closing_server(),
            refused: free_port(),
        }
    }

    pub fn config(&self, tunnel: u16) -> String {
        let t = |name: &str, port: u16| {
            format!("\n[[targets]]\nname = \"{name}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n")
        };
        let mut c = format!("\n[listeners.tcp]\nlisten = \"127.0.0.1:{tunnel}\"\n");
        c += &t("auto-echo", self.echo);
        c += &t("auto-count", self.count);
        c += &t("auto-closing", self.closing);
        c += &t("auto-refused", self.refused);
        c += &t("idle-echo", self.echo);
        c += &t("few-echo", self.echo);
        c += &t("warn-echo", self.echo);
        c += &t("plan-echo", self.echo);
        c += r#"
[[policies]]
name = "plan"
requesters = ["group:oncall"]
targets = ["plan-*"]
approvals_required = 0
max_duration = "10m"
max_schedule_ahead = "1h"
[[policies]]
name = "warn"
requesters = ["group:oncall"]
targets = ["warn-*"]
approvals_required = 0
max_duration = "10m"
warn_before = ["2s"]
[[policies]]
name = "idle"
requesters = ["group:oncall"]
targets = ["idle-*"]
approvals_required = 0
max_duration = "10m"
idle_timeout = "1s"

[[policies]]
name = "few"
requesters = ["group:oncall"]
targets = ["few-*"]
approvals_required = 0
max_duration = "10m"
max_sessions_per_grant = 2
"#;
        c
    }
}

/// A daemon with the tunnel listener and the upstreams above.
pub struct Tunnel {
    pub d: Daemon,
    pub port: u16,
    pub up: Upstreams,
    pub fingerprint: String,
}

impl Tunnel {
    pub fn start() -> Tunnel {
        Self::start_on(None, "", Upstreams::start())
    }

    /// One of several instances named `instance` sharing the store at `store_url`.
    pub fn start_instance(store_url: &str, instance: &str, up: &Upstreams) -> Tunnel {
        Self::start_on(
            Some(store_url),
            &format!("instance = \"{instance}\"\n"),
            up.clone(),
        )
    }

    /// An instance on `store_url` whose name is left to its default.
    pub fn start_unnamed(store_url: &str, up: &Upstreams) -> Tunnel {
        // base_config adds `instance = "test"` unless the keys mention it.
        Self::start_on(Some(store_url), "# instance: the default\n", up.clone())
    }

    fn start_on(store_url: Option<&str>, server_keys: &str, up: Upstreams) -> Tunnel {
        let port = free_port();
        let d = Daemon::start_with_server(store_url, server_keys, &up.config(port));
        let fingerprint = d
            .get("/v1/whoami", Some(super::daemon::BOB))
            .unwrap()
            .json()["tcp_tls_fingerprint"]
            .as_str()
            .unwrap()
            .to_string();
        Tunnel {
            d,
            port,
            up,
            fingerprint,
        }
    }

    /// An active grant for `user_token` on `target` and its connect secret.
    pub fn grant(&self, user_token: &str, target: &str, duration: &str) -> (String, String) {
        self.d.grant_with_secret(user_token, target, duration)
    }

    /// Runs the real `jitgate connect` for `target` with `secret`.
    pub fn connect(&self, target: &str, secret: &str) -> Connect {
        let c = self.connect_with(target, secret, &self.fingerprint, self.port);
        wait_for("jitgate connect to print its banner", || {
            c.said().contains("forwarding")
        });
        c
    }

    /// `jitgate connect` as given, without waiting for it to listen.
    pub fn connect_with(&self, target: &str, secret: &str, pin: &str, port: u16) -> Connect {
        let local = free_port();
        let stderr = self.d.dir.join(format!("connect-{target}-{local}.err"));
        let child = Command::new(BIN)
            .args([
                "connect",
                target,
                "--proxy",
                &format!("127.0.0.1:{port}"),
                "--listen",
                &format!("127.0.0.1:{local}"),
                "--fingerprint",
                pin,
            ])
            .env("JITGATE_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        Connect {
            child,
            local,
            stderr,
        }
    }

    /// Opens a tunnel session without `jitgate connect`.
    pub fn raw(&self, target: &str, secret: &str) -> (TlsClient, Reply) {
        let mut tls = self.tls();
        tls.write_all(&hello(1, target, secret, "")).unwrap();
        let reply = read_reply(&mut tls);
        (tls, reply)
    }

    /// A TLS connection to the tunnel listener with nothing sent yet.
    pub fn tls(&self) -> TlsClient {
        let cfg = jitgate::proxy::tcp::verify::client_config(None, Some(&self.fingerprint))
            .expect("client config");
        let conn = rustls::ClientConnection::new(
            Arc::new(cfg),
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
        }
        tls
    }

    pub fn live_sessions(&self) -> usize {
        let s = self
            .d
            .get("/v1/sessions", Some(super::daemon::DAVE))
            .unwrap()
            .json();
        s["sessions"].as_array().unwrap().len()
    }

    /// The value of one metric sample, 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        self.d
            .metrics()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// The handshake bytes, built by hand so tests can also build bad ones.
pub fn hello(kind: u8, target: &str, secret: &str, sid: &str) -> Vec<u8> {
    let mut v = b"JITG\x01".to_vec();
    v.push(kind);
    for s in [target, secret, sid] {
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
    }
    v
}

#[derive(Debug)]
pub struct Reply {
    pub status: u8,
    pub message: String,
    pub session_id: String,
}

pub const OK: u8 = 0;
pub const NO_GRANT: u8 = 1;
pub const BAD_SECRET: u8 = 2;
pub const LOCKED: u8 = 3;
pub const MAX_SESSIONS: u8 = 4;
pub const UPSTREAM_UNREACHABLE: u8 = 5;
pub const PROTOCOL_ERROR: u8 = 6;
pub const UNKNOWN_TARGET: u8 = 7;

pub fn read_reply(r: &mut impl Read) -> Reply {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).expect("reply header");
    assert_eq!(&head[..5], b"JITG\x01", "reply magic");
    let mut msg = vec![0u8; u16::from_be_bytes([head[6], head[7]]) as usize];
    r.read_exact(&mut msg).unwrap();
    let mut n = [0u8; 1];
    r.read_exact(&mut n).unwrap();
    let mut sid = vec![0u8; n[0] as usize];
    r.read_exact(&mut sid).unwrap();
    Reply {
        status: head[5],
        message: String::from_utf8(msg).unwrap(),
        session_id: String::from_utf8(sid).unwrap(),
    }
}

/// True once the peer has closed: EOF or a reset, never a timeout.
pub fn closed_by_peer(r: &mut impl Read) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

/// A running `jitgate connect`.
pub struct Connect {
    pub child: Child,
    pub local: u16,
    pub stderr: PathBuf,
}

impl Connect {
    pub fn said(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A local connection, i.e. one tunneled session, checked with one echo.
    pub fn open(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.local)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut code = None;
        wait_for("jitgate connect to exit", || {
            code = self.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        code.unwrap()
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `msg` and expects it echoed back.
pub fn echo(s: &mut (impl Read + Write), msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
}
