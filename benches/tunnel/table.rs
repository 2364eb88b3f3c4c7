//! The one table of medians and ratios the run prints on stdout.

use crate::haproxy::haproxy_maxconn;
use crate::path::{PathResults, PATH_BYTES, VIA_CONNECT, VIA_HAPROXY};
use crate::procs::fd_limit;
use crate::relay::{Dir, CASES};
use crate::stats::{cell, dist, fmt_dist, median, ms, ratio, Dist};
use crate::termination::{Latencies, ManyRun};
use crate::{SETUP_CLIENTS, SETUP_REPEATS, SETUP_SECONDS};
use std::collections::HashMap;
use std::time::Instant;

/// Every figure of the run, as measured.
pub struct Results {
    pub exp: Latencies,
    pub rev: Latencies,
    pub many: Vec<ManyRun>,
    pub hap_kib: Vec<f64>,
    /// MB/s per (index into `CASES`, route name).
    pub tput: HashMap<(usize, &'static str), Vec<f64>>,
    /// Connections per second per route name.
    pub setup: HashMap<&'static str, Vec<f64>>,
    pub have_haproxy: bool,
    pub started: Instant,
}

pub fn print(r: &Results) {
    let Results {
        exp,
        rev,
        many,
        hap_kib,
        tput,
        setup,
        have_haproxy,
        started,
    } = r;
    let have_haproxy = *have_haproxy;
    let n = many.iter().map(|r| r.n).min().unwrap_or(0);
    let med = |f: &dyn Fn(&ManyRun) -> f64| median(many.iter().map(f).collect());
    let many_dist = Dist {
        p50: med(&|r| r.per_session.map_or(f64::NAN, |d| d.p50)).unwrap_or(f64::NAN),
        p99: med(&|r| r.per_session.map_or(f64::NAN, |d| d.p99)).unwrap_or(f64::NAN),
        max: med(&|r| r.per_session.map_or(f64::NAN, |d| d.max)).unwrap_or(f64::NAN),
    };
    let lasts: Vec<String> = many.iter().map(|r| ms(r.last_ms)).collect();
    let not_closed: usize = many.iter().map(|r| r.not_closed).sum();
    let dash = "–".to_string();

    let mut rows: Vec<[String; 7]> = Vec::new();
    let one = |rows: &mut Vec<[String; 7]>, id: &str, what: String, d: Option<Dist>, goal: &str| {
        rows.push([
            id.into(),
            what,
            fmt_dist(d),
            dash.clone(),
            dash.clone(),
            dash.clone(),
            goal.into(),
        ]);
    };
    let nexp = exp.both.len();
    one(
        &mut rows,
        "1a",
        format!(
            "expiry → both sockets closed, 1 session, p50 / p99 / max (n={nexp}, {} skipped)",
            exp.skipped
        ),
        dist(exp.both.clone()),
        "p99 ≤ 1 ms",
    );
    one(
        &mut rows,
        "1a",
        "expiry → client saw EOF".into(),
        dist(exp.client.clone()),
        "",
    );
    one(
        &mut rows,
        "1a",
        "expiry → upstream saw EOF".into(),
        dist(exp.upstream.clone()),
        "",
    );
    one(
        &mut rows,
        "1b",
        format!(
            "revoke sent → both sockets closed, 1 session (n={})",
            rev.both.len()
        ),
        dist(rev.both.clone()),
        "p99 ≤ 1 ms",
    );
    one(
        &mut rows,
        "1b",
        "revoke sent → client saw EOF".into(),
        dist(rev.client.clone()),
        "",
    );
    one(
        &mut rows,
        "1b",
        "revoke sent → upstream saw EOF".into(),
        dist(rev.upstream.clone()),
        "",
    );
    one(
        &mut rows,
        "1b",
        "revoke call response time, 1 session".into(),
        dist(rev.response.clone()),
        "",
    );
    one(
        &mut rows,
        "1c",
        format!(
            "revoke sent → each session closed, N={n} under one grant (median of {} runs)",
            many.len()
        ),
        Some(many_dist),
        "",
    );
    rows.push([
        "1c".into(),
        format!(
            "revoke sent → last of the 2×N sockets closed, ms (runs: {})",
            lasts.join(", ")
        ),
        med(&|r| r.last_ms).map_or("–".into(), |v| format!("{} ms", ms(v))),
        dash.clone(),
        dash.clone(),
        dash.clone(),
        "all 10,000 ≤ 100 ms".into(),
    ]);
    rows.push([
        "1c".into(),
        format!("revoke call response time, N sessions (sessions not closed: {not_closed})"),
        med(&|r| r.response_ms).map_or("–".into(), |v| format!("{} ms", ms(v))),
        dash.clone(),
        dash.clone(),
        dash.clone(),
        "".into(),
    ]);
    for (ci, (dir, streams)) in CASES.iter().enumerate() {
        let m = |name: &str| tput.get(&(ci, name)).and_then(|v| median(v.clone()));
        let (j, h, d) = (m("jitgate"), m("haproxy"), m("direct"));
        let what = match (dir, streams) {
            (Dir::Upload, 1) => "upload, 1 stream × 512 MiB, MB/s (median of 5)".to_string(),
            (Dir::Download, 1) => "download, 1 stream × 512 MiB, MB/s".to_string(),
            (Dir::Upload, s) => format!("upload, {s} streams × {} MiB, MB/s", 512 / s),
            (Dir::Download, s) => format!("download, {s} streams × {} MiB, MB/s", 512 / s),
        };
        rows.push([
            "2".into(),
            what,
            cell(j, 0, true),
            cell(h, 0, have_haproxy),
            cell(d, 0, true),
            ratio(j, h),
            "".into(),
        ]);
    }
    let jk = med(&|r| r.kib_per_session);
    let hk = median(hap_kib.clone());
    rows.push([
        "3".into(),
        format!("RSS per idle session, N={n}, KiB (median of {} runs; HAProxy: TLS connection + backend)", many.len()),
        cell(jk, 1, true),
        cell(hk, 1, have_haproxy),
        dash.clone(),
        ratio(jk, hk),
        "≤ 8 KiB (HAProxy ~18)".into(),
    ]);
    let sm = |name: &str| setup.get(name).and_then(|v| median(v.clone()));
    let (sj, sh, sd) = (sm("jitgate"), sm("haproxy"), sm("direct"));
    rows.push([
        "4".into(),
        format!("connection setup: full TLS handshake (+ tunnel hello/OK) + 1-byte echo + close, {SETUP_CLIENTS} clients, conn/s (median of {SETUP_REPEATS} × {SETUP_SECONDS} s; direct: plain TCP)"),
        cell(sj, 0, true),
        cell(sh, 0, have_haproxy),
        cell(sd, 0, true),
        ratio(sj, sh),
        "".into(),
    ]);

    println!();
    println!("| # | measurement | jitgate | HAProxy | direct TCP | jitgate/HAProxy | goal |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!("| {} |", r.join(" | "));
    }
    println!();
    println!(
        "N = {n}: the daemon holds 2 fds per session (client + upstream) plus its own, under a hard limit of {} open files per process, so 10,000 sessions do not fit; clients ran in a child process, the upstream ends in the coordinator.",
        fd_limit(std::process::id())
    );
    if have_haproxy {
        println!(
            "HAProxy 'maxconn {}' instead of 30000: with 30000 it asks for 60,017 fds and refuses to start under that limit.",
            haproxy_maxconn()
        );
    }
    println!("Total bench time {:.0} s.", started.elapsed().as_secs_f64());
}

/// `median (min–max)` of the runs, or why there is none.
fn spread(v: Option<&Vec<f64>>, have: bool) -> String {
    match v.filter(|v| !v.is_empty()) {
        Some(v) => {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let m = median(v.clone()).unwrap_or(f64::NAN);
            format!("{m:.0} ({lo:.0}–{hi:.0})")
        }
        None => cell(None, 0, have),
    }
}

/// The whole-path table (2w, 4w): `jitgate connect` + `jitgate serve`
/// against HAProxy on both hops.
pub fn print_path(r: &PathResults, have_haproxy: bool) {
    if r.tput.is_empty() && r.setup.is_empty() {
        return;
    }
    let med = |v: Option<&Vec<f64>>| v.and_then(|v| median(v.clone()));
    println!();
    println!(
        "| # | whole path: sender → client side → TLS → server side → sink | jitgate connect + serve | HAProxy × 2 | runs | jitgate/HAProxy | goal |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mib = PATH_BYTES >> 20;
    for (ci, (dir, streams)) in CASES.iter().enumerate() {
        let j = r.tput.get(&(ci, VIA_CONNECT));
        let h = r.tput.get(&(ci, VIA_HAPROXY));
        let what = match dir {
            Dir::Upload => format!("upload, {streams} stream(s), {mib} MiB in all, MB/s"),
            Dir::Download => format!("download, {streams} stream(s), {mib} MiB in all, MB/s"),
        };
        println!(
            "| 2w | {what} | {} | {} | {} | {} | ≥ 1.0× |",
            spread(j, true),
            spread(h, have_haproxy),
            j.map_or(0, Vec::len),
            ratio(med(j), med(h))
        );
    }
    let (cj, ch) = (
        r.cpu_ms_per_gb.get(VIA_CONNECT),
        r.cpu_ms_per_gb.get(VIA_HAPROXY),
    );
    println!(
        "| 2w | CPU of both proxy processes, ms per GB moved (all cases) | {} | {} | {} | {} | |",
        spread(cj, true),
        spread(ch, have_haproxy),
        cj.map_or(0, Vec::len),
        ratio(med(cj), med(ch))
    );
    let (sj, sh) = (r.setup.get(VIA_CONNECT), r.setup.get(VIA_HAPROXY));
    println!(
        "| 4w | connection setup through both hops (+ 1-byte echo + close), {SETUP_CLIENTS} clients, conn/s | {} | {} | {} | {} | ≥ 1.0× |",
        spread(sj, true),
        spread(sh, have_haproxy),
        sj.map_or(0, Vec::len),
        ratio(med(sj), med(sh))
    );
}
