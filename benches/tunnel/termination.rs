//! Measurements 1a, 1b, 1c (termination latency) and 3 (idle memory).

use crate::clients::Clients;
use crate::haproxy::Haproxy;
use crate::jitgate::Jitgate;
use crate::net::{echo_tagged, open, wait_closed};
use crate::procs::{cpu_since, cpu_split, fd_limit, open_fds, read_status_kib, rss_kib, wait_idle};
use crate::stats::{dist, fmt_dist, ms, now_us, Dist};
use crate::upstream::Upstream;
use crate::{max_sessions, FD_MARGIN, ONE_SESSION_REPEATS, SHORT_GRANT};
use anyhow::{ensure, Context};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Per-session termination latencies in ms: (both closed, client, upstream).
#[derive(Default)]
pub struct Latencies {
    pub both: Vec<f64>,
    pub client: Vec<f64>,
    pub upstream: Vec<f64>,
    /// Revoke call response times.
    pub response: Vec<f64>,
    pub skipped: usize,
}

/// One session per short grant, left to expire; measured from `expires_at`.
pub fn expiry(
    rt: &tokio::runtime::Runtime,
    d: &Jitgate,
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
pub fn revoke_one(
    rt: &tokio::runtime::Runtime,
    d: &Jitgate,
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

pub struct ManyRun {
    pub n: usize,
    pub per_session: Option<Dist>,
    pub last_ms: f64,
    pub response_ms: f64,
    pub not_closed: usize,
    pub kib_per_session: f64,
}

/// A fresh daemon filled with as many idle sessions under one grant as its
/// fd limit allows: RSS before and after, then one revoke ends them all.
pub fn revoke_many(clients: &mut Clients, up: &Upstream, run: usize) -> anyhow::Result<ManyRun> {
    let d = Jitgate::start(up.jitgate)?;
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
    let n = ((fd_limit(pid) - fds - FD_MARGIN) / 2).min(max_sessions());
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
pub struct HaproxySetup<'a> {
    pub bin: &'a Path,
    pub dir: &'a Path,
    pub pem: &'a Path,
    /// Of the certificate in `pem`.
    pub fingerprint: &'a str,
}

/// HAProxy's RSS per idle TLS connection (each relaying to an upstream).
pub fn haproxy_idle(
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
