//! Cross-instance revoke latency (issue 8): two instances share a private
//! PostgreSQL store; a session lives on instance B; the revoke is an API call
//! on instance A. Measured: from just before the call to the moment B's
//! client sees its socket closed, and the call's own duration (it returns
//! once B has confirmed). The same revoke of a session on A itself is the
//! reference. Prints medians, p99 and max over `ROUNDS`; no thresholds.
//!
//! Run: `cargo bench --bench cluster` (needs the PostgreSQL server binaries
//! under /usr/lib/postgresql/*/bin, as the tests do).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::daemon::{BOB, DAVE};
use common::pg::PgCluster;
use common::tunnel::{closed_by_peer, echo, Tunnel, Upstreams, OK};
use std::time::{Duration, Instant};

const ROUNDS: usize = 100;

struct Sample {
    closed: Duration,
    call: Duration,
}

/// Opens a session on `on` under a fresh grant made on `api`, revokes it
/// through `api`, and times the close seen by the client.
fn one(api: &Tunnel, on: &Tunnel) -> Sample {
    let (gid, secret) = api.grant(BOB, "auto-echo", "10m");
    let (mut tls, reply) = on.raw("auto-echo", &secret);
    assert_eq!(reply.status, OK, "{}", reply.message);
    echo(&mut tls, b"ping");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let closed = closed_by_peer(&mut tls);
        tx.send((closed, Instant::now())).unwrap();
    });
    // Let the reader block in read() before the clock starts.
    std::thread::sleep(Duration::from_millis(5));
    let t0 = Instant::now();
    let r = api
        .d
        .post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"bench"}"#,
        )
        .unwrap();
    let call = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions_terminated"], 1, "{}", r.body);
    let (closed, at) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(closed);
    reader.join().unwrap();
    Sample {
        closed: at - t0,
        call,
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn row(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} |",
        pct(&v, 0.5),
        pct(&v, 0.99),
        v[v.len() - 1]
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(pg) = PgCluster::start() else {
        eprintln!("no PostgreSQL server binaries: nothing measured");
        return;
    };
    let url = pg.create_db("jitgate_bench_cluster");
    let up = Upstreams::start();
    let a = Tunnel::start_instance(&url, "a", &up);
    let b = Tunnel::start_instance(&url, "b", &up);
    // Warm-up: connections in the pools, LISTEN established.
    for _ in 0..5 {
        one(&a, &b);
    }
    let (mut cross, mut local) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        cross.push(one(&a, &b));
        local.push(one(&a, &a));
        if (i + 1) % 25 == 0 {
            eprintln!("{} rounds", i + 1);
        }
    }
    let ms = |v: &[Sample], f: fn(&Sample) -> Duration| -> Vec<f64> {
        v.iter().map(|s| f(s).as_secs_f64() * 1000.0).collect()
    };
    println!("\nRevoke latency over {ROUNDS} revokes, ms (two instances, one PostgreSQL store)\n");
    println!("| measure | p50 | p99 | max |");
    println!("|---|---|---|---|");
    row(
        "API call on A to socket closed, session on B",
        ms(&cross, |s| s.closed),
    );
    row(
        "API call on A returns (B confirmed), session on B",
        ms(&cross, |s| s.call),
    );
    row(
        "API call on A to socket closed, session on A",
        ms(&local, |s| s.closed),
    );
    row(
        "API call on A returns, session on A",
        ms(&local, |s| s.call),
    );
}
