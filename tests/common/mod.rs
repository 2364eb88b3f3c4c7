//! Shared test helpers: real PostgreSQL, the daemon as a child process, free
//! ports, and the E2E skip policy.
#![allow(dead_code)]

pub mod a11y;
pub mod api;
pub mod browser;
pub mod causes;
pub mod client_home;
pub mod console_watch;
pub mod daemon;
pub mod hook;
pub mod idp;
pub mod lifecycle;
pub mod pg;
pub mod pg_activity;
pub mod pgproxy;
pub mod pgraw;
pub mod recording;
pub mod schedule;
pub mod sshd;
pub mod sshproxy;
pub mod tunnel;
pub mod wait;

/// Says loudly that a test is skipped for a missing peer, or fails it when
/// JITGATE_E2E=require (as CI sets it) so a skip there is a failure.
pub fn e2e_skip(what: &str) {
    if std::env::var("JITGATE_E2E").as_deref() == Ok("require") {
        panic!("JITGATE_E2E=require but {what}");
    }
    eprintln!("\n*** SKIPPED: {what}. Install it or set JITGATE_E2E=require to make this a failure. ***\n");
}

/// A port nothing listens on now, and one this process has not handed out
/// before: the kernel may give the same ephemeral port to two binds in a
/// row once the first is closed, and a daemon whose admin and metrics
/// listeners got the same port refuses its config (seen in CI).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Kept here too: tests call `common::wait_output`.
#[allow(unused_imports)]
pub use wait::wait_output;
