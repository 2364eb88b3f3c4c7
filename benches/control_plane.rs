//! Control-plane latency: request + approve under 50 concurrent clients,
//! against the real daemon on SQLite and (when available) PostgreSQL.
//!
//!     cargo bench --bench control_plane
//!
//! Prints medians and tail percentiles; figures go to docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use common::daemon::{http, Daemon, ALICE, CAROL};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
const PER_CLIENT: usize = 40;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run(label: &str, d: &Daemon) {
    let port = d.admin_port;
    let lat = Arc::new(Mutex::new(Vec::with_capacity(CLIENTS * PER_CLIENT)));
    let errors = Arc::new(Mutex::new(0usize));
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (lat, errors) = (lat.clone(), errors.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_CLIENT {
                    let t0 = Instant::now();
                    let r = http(
                        port,
                        "POST",
                        "/v1/requests",
                        Some(ALICE),
                        Some(r#"{"target":"cache","duration":"5m","reason":"bench"}"#),
                    );
                    let Ok(r) = r.and_then(|r| {
                        if r.status == 201 {
                            Ok(r)
                        } else {
                            Err(std::io::Error::other(r.body))
                        }
                    }) else {
                        *errors.lock().unwrap() += 1;
                        continue;
                    };
                    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
                    let a = http(
                        port,
                        "POST",
                        &format!("/v1/requests/{id}/approve"),
                        Some(CAROL),
                        Some("{}"),
                    );
                    if !matches!(a, Ok(ref r) if r.status == 200) {
                        *errors.lock().unwrap() += 1;
                        continue;
                    }
                    lat.lock().unwrap().push(t0.elapsed());
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let wall = start.elapsed();
    let mut v = lat.lock().unwrap().clone();
    v.sort();
    if v.is_empty() {
        println!("{label:<10} no successful operations");
        return;
    }
    println!(
        "{label:<10} {:>6} ops  {:>7.1} ops/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  errors {}",
        v.len(),
        v.len() as f64 / wall.as_secs_f64(),
        pct(&v, 0.50).as_secs_f64() * 1e3,
        pct(&v, 0.95).as_secs_f64() * 1e3,
        pct(&v, 0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        errors.lock().unwrap()
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with no work expected.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!("request+approve round trip (two HTTP calls, new connection each), {CLIENTS} concurrent clients x {PER_CLIENT}");
    let d = Daemon::start();
    run("sqlite", &d);
    drop(d);
    if let Some(pg) = common::pg::PgCluster::start() {
        let url = pg.create_db("bench");
        let d = Daemon::start_with(Some(&url), "");
        run("postgres", &d);
    }
}
