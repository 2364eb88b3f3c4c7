//! jitgate under test: tests/common's `Daemon` (the binary cargo built for
//! this bench, on a fresh SQLite store) with the tunnel listener and an
//! auto-approving policy for `TARGET`, plus what only the bench needs: the
//! tunnel's certificate, and a revoke timed from the instant it is written.

use crate::daemon::{Daemon, BOB, DAVE};
use crate::net::Route;
use crate::stats::now_us;
use crate::{free_port, TARGET};
use anyhow::{ensure, Context};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The daemon, its tunnel port and the fingerprint clients pin.
pub struct Jitgate {
    pub d: Daemon,
    pub tunnel: u16,
    pub fingerprint: String,
    pid: u32,
}

/// An auto-approved grant for bob with its connect secret.
pub struct Grant {
    pub id: String,
    pub secret: String,
    pub expires_at_us: i64,
}

/// A revoke: written at `t0`, whole response read at `t1` (µs).
pub struct Revoked {
    pub t0: i64,
    pub t1: i64,
    pub sessions: u64,
}

impl Jitgate {
    pub fn start(upstream: u16) -> anyhow::Result<Jitgate> {
        let tunnel = free_port();
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
        let mut d = Daemon::configured(None, "", &extra);
        // Debug logs of 10,000 sessions would be part of what is measured.
        d.env.push(("RUST_LOG".into(), "warn".into()));
        d.spawn();
        let pid = d
            .child
            .as_ref()
            .map(Child::id)
            .context("jitgate not running")?;
        let w = d.get("/v1/whoami", Some(BOB))?;
        ensure!(w.status == 200, "whoami: {} {}", w.status, w.body);
        let w: serde_json::Value = serde_json::from_str(&w.body)?;
        let fingerprint = w["tcp_tls_fingerprint"]
            .as_str()
            .context("whoami has no tcp_tls_fingerprint")?
            .to_string();
        Ok(Jitgate {
            d,
            tunnel,
            fingerprint,
            pid,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn tls(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::new(jitgate::proxy::tcp::verify::client_config(
            None,
            Some(&self.fingerprint),
        )?))
    }

    /// An auto-approved grant for bob on `TARGET`, with its connect secret.
    pub fn grant(&self, duration: &str) -> anyhow::Result<Grant> {
        let v = self.d.create_request(BOB, TARGET, duration);
        let id = v["grant"]["id"]
            .as_str()
            .context("request not auto-approved")?
            .to_string();
        let exp = v["grant"]["expires_at"].as_str().context("no expires_at")?;
        let expires_at_us = humantime::parse_rfc3339(exp)?
            .duration_since(UNIX_EPOCH)?
            .as_micros() as i64;
        let s = self
            .d
            .post(&format!("/v1/grants/{id}/secret"), Some(BOB), "")?;
        ensure!(s.status == 200, "secret refused: {} {}", s.status, s.body);
        let v: serde_json::Value = serde_json::from_str(&s.body)?;
        let secret = v["secret"].as_str().context("no secret")?.to_string();
        Ok(Grant {
            id,
            secret,
            expires_at_us,
        })
    }

    pub fn route(&self, tls: &Arc<rustls::ClientConfig>, g: &Grant) -> Route {
        Route::Jitgate {
            port: self.tunnel,
            tls: tls.clone(),
            secret: g.secret.clone(),
        }
    }

    /// Revokes as dave; `t0` is taken on a connected socket just before the
    /// request is written, `t1` when the whole response has arrived.
    pub fn revoke(&self, gid: &str) -> anyhow::Result<Revoked> {
        let body = r#"{"reason":"bench"}"#;
        let req = format!(
            "POST /v1/grants/{gid}/revoke HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {DAVE}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.d.admin_port))?;
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
    pub fn combined_pem(&self, to: &Path) -> anyhow::Result<()> {
        let data = self.d.dir.join("data");
        let mut pem = std::fs::read(data.join("tcp-cert.pem"))?;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend(std::fs::read(data.join("tcp-key.pem"))?);
        std::fs::write(to, pem)?;
        Ok(())
    }
}

impl Drop for Jitgate {
    /// Stops the daemon first so its log is complete; `Daemon`'s own drop
    /// then fails loudly on a panic in it.
    fn drop(&mut self) {
        if let Some(mut c) = self.d.child.take() {
            crate::procs::kill(&mut c);
        }
        let logs = self.d.logs();
        if logs.contains("audit queue full") {
            eprintln!("!! the daemon log contains \"audit queue full\":\n{logs}");
        }
    }
}
