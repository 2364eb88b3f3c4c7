//! What /proc says about the daemon, HAProxy and the clients child.

use std::process::Child;
use std::time::{Duration, Instant};

pub fn read_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    read_status_kib(pid, "VmRSS:")
}

/// (utime, stime) of a process in clock ticks (10 ms here).
pub fn cpu_split(pid: u32) -> (u64, u64) {
    let parse = || -> Option<(u64, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
    };
    parse().unwrap_or((0, 0))
}

pub fn cpu_ticks(pid: u32) -> u64 {
    let (u, s) = cpu_split(pid);
    u + s
}

/// CPU a process used since `since`, as "user X ms + sys Y ms".
pub fn cpu_since(pid: u32, since: (u64, u64)) -> String {
    let (u, s) = cpu_split(pid);
    format!(
        "user {} ms + sys {} ms",
        (u - since.0) * 10,
        (s - since.1) * 10
    )
}

/// Waits until `pid` used at most one clock tick (~10 ms) of CPU over a
/// `window`: its queues (e.g. the audit writer) are drained and it is idle.
pub fn wait_idle(pid: u32, window: Duration, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let a = cpu_ticks(pid);
        std::thread::sleep(window);
        let b = cpu_ticks(pid);
        if b.saturating_sub(a) <= 1 || start.elapsed() > limit {
            return start.elapsed();
        }
    }
}

pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The soft "Max open files" of a process.
pub fn fd_limit(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits until the proxies are idle so one measurement does not pay for the
/// previous one's tail (e.g. the daemon's audit writer).
pub fn settle(pids: &[u32]) {
    for &p in pids {
        wait_idle(p, Duration::from_millis(200), Duration::from_secs(30));
    }
}
