//! Measurement 2w: the whole tunnel path an engineer runs (issue 21).
//!
//! sender → `jitgate connect` → TLS → `jitgate serve` → sink, against
//! HAProxy on both hops: one instance taking plain TCP and opening TLS to
//! the other while verifying its certificate (CA file and host name), the
//! other terminating TLS in front of the sink. Both client-side processes
//! are children on local ports, so the bench's own sender speaks plain TCP
//! to either: what differs is only the two proxies. Measuring with a
//! rustls client in place of `jitgate connect` (measurement 2) leaves out
//! half of what users run.

use crate::daemon::BIN;
use crate::free_port;
use crate::haproxy::Haproxy;
use crate::jitgate::{Grant, Jitgate};
use crate::net::Route;
use crate::procs::{cpu_ticks, kill, settle};
use crate::relay::{setup_rate, transfer_bytes, CASES};
use crate::{SETUP_CLIENTS, SETUP_REPEATS, SETUP_SECONDS, TARGET};
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `jitgate connect` child forwarding a local port through the tunnel.
pub struct ConnectClient {
    child: Child,
    pub port: u16,
}

impl ConnectClient {
    /// Starts it with the pinned fingerprint, as `jitgate whoami` tells
    /// users to, and waits for its "forwarding" line: probing its port
    /// instead would open a tunnelled session.
    pub fn start(
        tunnel: u16,
        fingerprint: &str,
        secret: &str,
        dir: &Path,
    ) -> anyhow::Result<ConnectClient> {
        let port = free_port();
        let log_path = dir.join(format!("connect-{port}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(BIN)
            .args([
                "connect",
                TARGET,
                "--proxy",
                &format!("127.0.0.1:{tunnel}"),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--fingerprint",
                fingerprint,
            ])
            .env("JITGATE_SECRET", secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning jitgate connect")?;
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("forwarding") {
                return Ok(ConnectClient { child, port });
            }
            if let Ok(Some(st)) = child.try_wait() {
                bail!("jitgate connect exited with {st}: {text}");
            }
            if Instant::now() > until {
                kill(&mut child);
                bail!("jitgate connect did not start within 20 s: {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ConnectClient {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// HAProxy as the engineer's side of the path: plain TCP in, TLS out to
/// `backend` with the certificate verified against `ca` for "localhost",
/// as `jitgate connect` verifies its proxy.
pub fn haproxy_client(bin: &Path, dir: &Path, ca: &Path, backend: u16) -> anyhow::Result<Haproxy> {
    let server = format!(
        "127.0.0.1:{backend} ssl verify required ca-file {} verifyhost localhost sni str(localhost)",
        ca.display()
    );
    Haproxy::start_with(bin, dir, "", &server)
}

/// Route names of the whole-path figures in `Results::path_tput`.
pub const VIA_CONNECT: &str = "jitgate";
pub const VIA_HAPROXY: &str = "haproxy";

/// Bytes per whole-path transfer: the outside check's 1 GiB per round.
pub const PATH_BYTES: u64 = 1 << 30;
/// Rounds of the whole-path measurement, each route once per case.
pub const PATH_REPEATS: usize = 5;

/// Figures of measurement 2w and 4w: MB/s per (case, route) and
/// connections per second per route.
#[derive(Default)]
pub struct PathResults {
    pub tput: HashMap<(usize, &'static str), Vec<f64>>,
    pub setup: HashMap<&'static str, Vec<f64>>,
    /// Proxy CPU (both processes of a route) in ms per GB moved.
    pub cpu_ms_per_gb: HashMap<&'static str, Vec<f64>>,
}

/// Both whole paths, interleaved round by round. `terminator` is the
/// TLS-terminating HAProxy of measurement 2, reused as the far hop.
pub fn run(
    rt: &tokio::runtime::Runtime,
    d0: &Jitgate,
    g: &Grant,
    hap: Option<(&Path, &Haproxy)>,
    dir: &Path,
) -> anyhow::Result<PathResults> {
    let connect = ConnectClient::start(d0.tunnel, &d0.fingerprint, &g.secret, dir)?;
    let mut routes: Vec<(&'static str, u16, Vec<u32>)> =
        vec![(VIA_CONNECT, connect.port, vec![connect.pid(), d0.pid()])];
    let near = match hap {
        Some((bin, far)) => {
            let ca = d0.d.dir.join("data").join("tcp-cert.pem");
            let near = haproxy_client(bin, dir, &ca, far.port)?;
            routes.push((VIA_HAPROXY, near.port, vec![near.pid(), far.pid()]));
            Some(near)
        }
        None => None,
    };
    let all: Vec<u32> = routes.iter().flat_map(|r| r.2.clone()).collect();
    let mut out = PathResults::default();
    eprintln!(
        "2w: whole path, {} MiB per transfer, {PATH_REPEATS} rounds",
        PATH_BYTES >> 20
    );
    for rep in 0..PATH_REPEATS {
        for (ci, (dir, streams)) in CASES.iter().enumerate() {
            for (name, port, pids) in &routes {
                settle(&all);
                let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
                let route = Route::Direct { port: *port };
                match rt.block_on(transfer_bytes(&route, *dir, *streams, PATH_BYTES)) {
                    Ok(v) => {
                        let ticks: u64 = pids
                            .iter()
                            .zip(&before)
                            .map(|(p, b)| cpu_ticks(*p) - b)
                            .sum();
                        // Ticks are 10 ms; per GB (10^9 bytes).
                        let gb = PATH_BYTES as f64 / 1e9;
                        out.cpu_ms_per_gb
                            .entry(name)
                            .or_default()
                            .push(ticks as f64 * 10.0 / gb);
                        out.tput.entry((ci, name)).or_default().push(v);
                    }
                    Err(e) => eprintln!("   {name} {dir:?} x{streams} rep {rep} failed: {e:#}"),
                }
            }
        }
        eprintln!("   rep {rep} done");
    }
    eprintln!("4w: setup rate through the whole path, {SETUP_CLIENTS} clients x {SETUP_SECONDS} s");
    for rep in 0..SETUP_REPEATS {
        for (name, port, _) in &routes {
            settle(&all);
            let (rate, _, failed) = rt.block_on(setup_rate(&Route::Direct { port: *port }));
            eprintln!("   rep {rep} {name}: {rate:.0} conn/s, {failed} failed");
            out.setup.entry(name).or_default().push(rate);
        }
    }
    drop(near);
    drop(connect);
    Ok(out)
}
