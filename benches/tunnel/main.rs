//! TCP tunnel benchmarks (issue 4), against HAProxy doing the same
//! TLS-terminated relay and against plain TCP, in one run:
//!
//! 1. termination latency, grant end to both sockets closed: one session at
//!    expiry, one session at revoke, and as many sessions under one grant as
//!    the 20,000-fd limit allows, ended by one revoke;
//! 2. relay throughput, upload and download, 1 and 8 streams, from a rustls
//!    client; 2w: the same over the whole path users run, through
//!    `jitgate connect` against HAProxy on both hops (and 4w: its setup
//!    rate);
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

mod clients;
mod haproxy;
mod jitgate;
mod net;
mod path;
mod procs;
mod relay;
mod stats;
mod table;
mod termination;
mod upstream;

/// Only the daemon harness of tests/common (config, tokens, plain HTTP): the
/// rest of it brings in the PostgreSQL test clients, which this bench does
/// not need. It expects `free_port` and `wait` in its parent module.
#[path = "../../tests/common/daemon.rs"]
#[allow(dead_code)]
mod daemon;
#[path = "../../tests/common/wait.rs"]
#[allow(dead_code)]
mod wait;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

use clients::{clients_role, Clients};
use haproxy::{find_haproxy, haproxy_maxconn, Haproxy};
use jitgate::{Grant, Jitgate};
use net::{tls_params, Route};
use procs::{cpu_split, settle};
use relay::{setup_rate, transfer, CASES};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use termination::{expiry, haproxy_idle, revoke_many, revoke_one, HaproxySetup};
use upstream::Upstream;

/// Repeats of the one-session termination measurements (after 2 warm-ups).
pub const ONE_SESSION_REPEATS: usize = 30;
/// Grant length for the expiry measurement: long enough to set up a session.
pub const SHORT_GRANT: &str = "500ms";
/// Runs of the many-session revoke and of the idle-memory measurement.
pub const MANY_RUNS: usize = 3;
/// Sessions opened at once while filling the daemon (it admits 1,024
/// unauthenticated connections at a time).
pub const OPEN_CONCURRENCY: usize = 128;
/// Fds the daemon may need beyond the sessions (store, admin call, metrics).
pub const FD_MARGIN: usize = 100;
pub const MAX_SESSIONS: usize = 10_000;

/// `BENCH_ONLY=many` runs only the many-session revoke and idle memory
/// (1c + 3), `BENCH_ONLY=one` only the one-session terminations (1a, 1b),
/// `BENCH_ONLY=path` only the whole path through `jitgate connect` (2w, 4w),
/// `BENCH_ONLY=setup` only the setup rate (4); `BENCH_SESSIONS` caps their session count (e.g. 2000) and
/// `BENCH_RUNS` sets their number of runs.
fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

pub fn max_sessions() -> usize {
    env_usize("BENCH_SESSIONS")
        .unwrap_or(MAX_SESSIONS)
        .min(MAX_SESSIONS)
}

fn many_runs() -> usize {
    env_usize("BENCH_RUNS").unwrap_or(MANY_RUNS).max(1)
}
pub const TRANSFER_BYTES: u64 = 512 << 20;
pub const TRANSFER_REPEATS: usize = 5;
pub const SETUP_CLIENTS: usize = 32;
pub const SETUP_SECONDS: u64 = 5;
pub const SETUP_REPEATS: usize = 3;
/// The tunnel target every session uses; the policy below auto-approves it.
pub const TARGET: &str = "bench-echo";
pub const NOT_INSTALLED: &str = "haproxy: not installed (run benches/compare.sh)";

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
    let d0 = Jitgate::start(up.jitgate)?;
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

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let many_only = only == "many";
    let (mut exp, mut rev) = Default::default();
    let mut tput: HashMap<(usize, &str), Vec<f64>> = HashMap::new();
    let mut setup: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut whole = path::PathResults::default();
    if only == "path" {
        let g = d0.grant("1h")?;
        let far = haproxy_bin.as_deref().zip(hap.as_ref());
        whole = path::run(&rt, &d0, &g, far, tmp.path())?;
        table::print_path(&whole, have_haproxy);
        return Ok(());
    }
    if only == "setup" {
        let g = d0.grant("1h")?;
        setup = measure_setup(&rt, &d0, &tls, hap.as_ref(), &g, &pids, up.direct);
        table::print(&table::Results {
            exp,
            rev,
            many: Vec::new(),
            hap_kib: Vec::new(),
            tput,
            setup,
            have_haproxy,
            started,
        });
        return Ok(());
    }
    if !many_only {
        eprintln!("1a: expiry of one session, {ONE_SESSION_REPEATS} grants of {SHORT_GRANT}");
        exp = expiry(&rt, &d0, &tls, &up)?;
        eprintln!("1b: revoke of one session, {ONE_SESSION_REPEATS} grants");
        settle(&pids);
        rev = revoke_one(&rt, &d0, &tls, &up)?;
        if only == "one" {
            table::print(&table::Results {
                exp,
                rev,
                many: Vec::new(),
                hap_kib: Vec::new(),
                tput,
                setup,
                have_haproxy,
                started,
            });
            return Ok(());
        }

        eprintln!("2: throughput, {} MiB per transfer", TRANSFER_BYTES >> 20);
        let g = d0.grant("1h")?;
        let mut routes = vec![("jitgate", d0.route(&tls, &g))];
        if let Some(h) = &hap {
            routes.push(("haproxy", h.route(&tls)));
        }
        routes.push(("direct", Route::Direct { port: up.direct }));
        for rep in 0..TRANSFER_REPEATS {
            for (ci, (dir, streams)) in CASES.iter().enumerate() {
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
        let far = haproxy_bin.as_deref().zip(hap.as_ref());
        whole = path::run(&rt, &d0, &g, far, tmp.path())?;

        setup = measure_setup(&rt, &d0, &tls, hap.as_ref(), &g, &pids, up.direct);
    }
    drop(hap);
    drop(d0);

    eprintln!("1c + 3: one revoke ending every session of a full daemon; RSS per idle session");
    let mut clients = Clients::spawn()?;
    let mut many = Vec::new();
    for run in 0..many_runs() {
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
        for run in 0..many_runs() {
            hap_kib.push(haproxy_idle(&mut clients, &hs, &up, n_h, run)?);
        }
    }
    drop(clients);

    table::print(&table::Results {
        exp,
        rev,
        many,
        hap_kib,
        tput,
        setup,
        have_haproxy,
        started,
    });
    table::print_path(&whole, have_haproxy);
    Ok(())
}

/// Measurement 4: connections per second with full TLS handshakes through
/// jitgate, HAProxy and directly, with the proxies' CPU per connection.
fn measure_setup(
    rt: &tokio::runtime::Runtime,
    d0: &Jitgate,
    tls: &Arc<rustls::ClientConfig>,
    hap: Option<&Haproxy>,
    g: &Grant,
    pids: &[u32],
    direct: u16,
) -> HashMap<&'static str, Vec<f64>> {
    let mut setup: HashMap<&'static str, Vec<f64>> = HashMap::new();
    eprintln!("4: setup rate, {SETUP_CLIENTS} clients x {SETUP_SECONDS} s, no TLS resumption");
    let mut no_resume = (**tls).clone();
    no_resume.resumption = rustls::client::Resumption::disabled();
    let no_resume = Arc::new(no_resume);
    let mut setup_routes = vec![("jitgate", d0.route(&no_resume, g), Some(d0.pid()))];
    if let Some(h) = hap {
        setup_routes.push(("haproxy", h.route(&no_resume), Some(h.pid())));
    }
    setup_routes.push(("direct", Route::Direct { port: direct }, None));
    for rep in 0..SETUP_REPEATS {
        for (name, route, pid) in &setup_routes {
            settle(pids);
            let before = pid.map(cpu_split);
            let (rate, conns, failed) = rt.block_on(setup_rate(route));
            // The tail of the work (e.g. audit writes) counts too.
            settle(pids);
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
    setup
}
