//! HAProxy doing the same TLS-terminated relay, when it is installed.

use crate::free_port;
use crate::net::Route;
use crate::procs::{fd_limit, kill};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn find_haproxy() -> Option<PathBuf> {
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
pub struct Haproxy {
    pub child: Child,
    pub port: u16,
}

/// `maxconn 30000` would make HAProxy ask for 60,017 fds, which it refuses
/// to start without under the 20,000 hard limit; use the most that fits.
pub fn haproxy_maxconn() -> usize {
    ((fd_limit(std::process::id()) - 40) / 2).min(30_000)
}

impl Haproxy {
    pub fn start(bin: &Path, dir: &Path, pem: &Path, backend: u16) -> anyhow::Result<Haproxy> {
        let bind = format!(" ssl crt {}", pem.display());
        Haproxy::start_with(bin, dir, &bind, &format!("127.0.0.1:{backend}"))
    }

    /// HAProxy with `bind_opts` after its listening address and `server`
    /// as its one backend server line (address and options).
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        bind_opts: &str,
        server: &str,
    ) -> anyhow::Result<Haproxy> {
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
    bind 127.0.0.1:{port}{bind_opts}
    default_backend upstream

backend upstream
    server up {server}
"
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn route(&self, tls: &Arc<rustls::ClientConfig>) -> Route {
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
