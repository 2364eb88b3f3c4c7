//! The metrics exposition of a real daemon that has done some work: it
//! passes `promtool check metrics` (SPEC "Metrics"), carries the process
//! collector, labels admin requests by route only, and every family it
//! exposes is documented in docs/operations.md.

use crate::common;

use common::daemon::*;
use common::e2e_skip;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon after a request, an approval, API calls with and without a
/// valid token and a failed reload, so labelled series and histograms exist.
fn busy_daemon() -> Daemon {
    let d = Daemon::start();
    let _ = d.grant_with_secret(BOB, "auto-web", "5m");
    let r = d.create_request(BOB, "cache", "5m");
    let id = r["id"].as_str().expect("request id").to_string();
    let a = d
        .post(&format!("/v1/requests/{id}/approve"), Some(CAROL), "{}")
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(d.get("/v1/whoami", None).unwrap().status, 401);
    assert_eq!(d.get("/v1/whoami", Some("jgt_wrong")).unwrap().status, 401);
    assert_eq!(d.get("/v1/whoami", Some(BOB)).unwrap().status, 200);
    d
}

fn promtool(exposition: &str) -> Option<std::process::Output> {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => {
            e2e_skip("promtool (Debian package prometheus) is not installed");
            return None;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(exposition.as_bytes())
        .expect("feed promtool");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("promtool status").is_some() {
            return Some(child.wait_with_output().expect("promtool output"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promtool did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_exposition_passes_promtool_without_warnings() {
    let d = busy_daemon();
    let m = d.metrics();
    assert!(m.contains("jitgate_admin_requests_total"), "{m}");
    let Some(out) = promtool(&m) else { return };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{m}");
    assert!(said.trim().is_empty(), "promtool warned: {said}");
}

#[test]
fn process_metrics_are_exposed_and_admin_routes_are_only_routes() {
    let d = busy_daemon();
    let m = d.metrics();
    for family in [
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with(&format!("{family} "))),
            "{family} missing:\n{m}"
        );
    }
    for l in m
        .lines()
        .filter(|l| l.starts_with("jitgate_admin_requests_total{"))
    {
        let route = l.split("route=\"").nth(1).unwrap_or_default();
        assert!(
            route.starts_with('/') || route.starts_with("other") || route.starts_with("timeout"),
            "not a route: {l}"
        );
    }
    assert!(
        m.contains("jitgate_admin_unauthenticated_total{reason=\"missing_token\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("jitgate_admin_unauthenticated_total{reason=\"bad_token\"} 1"),
        "{m}"
    );
}

#[test]
fn every_exposed_metric_is_documented_in_operations_md() {
    let d = busy_daemon();
    let docs = include_str!("../../docs/operations.md");
    let missing: Vec<String> = d
        .metrics()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            !docs.contains(&format!("`{name}`")) && !docs.contains(&format!("`{name}{{"))
        })
        .map(str::to_string)
        .collect();
    assert!(missing.is_empty(), "not in docs/operations.md: {missing:?}");
}
