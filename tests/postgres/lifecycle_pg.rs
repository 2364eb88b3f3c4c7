//! Extension in place on PostgreSQL with a real interactive psql: a query
//! running across the grant's first end finishes, the backend (same pid)
//! keeps serving after it, the notice says until when, and the session is
//! ended at the new end with the farewell.

use crate::common;

use common::daemon::*;
use common::lifecycle::{extend_now, grant_end, now_ms, sleep_past};
use common::pgproxy::*;
use common::wait::*;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// psql on a terminal (`script`), with what it printed so far.
struct Psql {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    seen: Arc<Mutex<String>>,
}

impl Psql {
    fn start(p: &PgProxy, secret: &str) -> Psql {
        let psql = format!(
            "psql '{}' -X -A -t -P pager=off",
            p.conninfo("bob@warn-db", "")
        );
        let mut child = std::process::Command::new("script")
            .args(["-qfec", &psql, "/dev/null"])
            .env("PGPASSWORD", secret)
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script(1) runs psql");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                if n == 0 {
                    return;
                }
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Psql { child, stdin, seen }
    }

    fn seen(&self) -> String {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("psql takes input");
    }

    /// Waits (bounded) for `what` to appear after byte `from` of the output.
    fn expect_after(&self, from: usize, what: &str) -> String {
        // A hang bound only (psql has taken over 20 s to start under load).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self.seen();
            if let Some(tail) = seen.get(from..) {
                if tail.contains(what) {
                    return tail.to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "psql never printed {what:?}; it printed:\n{seen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_psql_session_outlives_its_first_end_on_the_same_backend_and_ends_at_the_new_one() {
    let Some(p) = PgProxy::start() else { return };
    // Long enough for psql to start, answer and be extended before the
    // first end on a loaded machine.
    let (gid, secret) = p.grant(BOB, "warn-db", "15s");
    let first_end = grant_end(&p.d, &gid);
    let mut psql = Psql::start(&p, &secret);
    psql.send("SELECT 'pi' || 'd:' || pg_backend_pid();");
    let out = psql.expect_after(0, "pid:");
    // (The terminal echoes the input; the result is the only "pid:".)
    let pid = out
        .split("pid:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(str::to_string)
        .expect("a backend pid");
    assert!(pid.parse::<u32>().is_ok(), "{out}");

    let new_end = extend_now(&p.d, BOB, &gid, "8s");
    assert_eq!(new_end, first_end + 8_000);

    // A query running across the first end finishes.
    let mark = psql.seen().len();
    let left = ((first_end - now_ms()) / 1000 + 2).max(2);
    psql.send(&format!("SELECT 'sle' || 'pt:' || pg_sleep({left});"));
    psql.expect_after(mark, "slept:");
    assert!(now_ms() > first_end, "the query ran past the first end");

    // The same backend answers after the first end; the notice was shown.
    sleep_past(first_end, Duration::from_millis(300));
    let mark = psql.seen().len();
    psql.send("SELECT 'pi' || 'd:' || pg_backend_pid();");
    let tail = psql.expect_after(mark, "pid:");
    let again = tail
        .split("pid:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default();
    assert_eq!(again, pid, "the same backend after the first end:\n{tail}");
    let all = psql.seen();
    let until = jitgate::clock::rfc3339(new_end);
    assert!(
        all.contains(&format!(
            "jitgate: access to warn-db extended until {until}"
        )),
        "the extension notice:\n{all}"
    );

    // At the new end the session is ended, with the farewell.
    sleep_past(new_end, Duration::from_millis(300));
    let mark = psql.seen().len();
    psql.send("SELECT 'after' || ' the end';");
    psql.expect_after(mark, "access to warn-db ended: grant expired");
    assert!(
        !psql.seen()[mark..].contains("after the end"),
        "no query ran after the new end"
    );
    psql.send("\\q");
    let _ = wait_status(&mut psql.child, HANG);
    // The transcript, for `--nocapture`.
    eprintln!("{}", psql.seen());
}

#[test]
fn a_scheduled_grant_is_refused_after_authentication_with_its_start_then_works() {
    let Some(p) = PgProxy::start() else { return };
    let (secret, start, o) = common::schedule::attempt_before_start(&p.d, BOB, "auto-db", |s| {
        p.psql("bob@auto-db", s, "SELECT 'in' || 'side'")
    });
    let until = jitgate::clock::rfc3339(start);
    let (so, se) = text(&o);
    assert!(!o.status.success(), "{so}{se}");
    assert!(se.contains(&format!("starts at {until}")), "{se}");
    // A wrong secret learns nothing about the schedule.
    let o = p.psql("bob@auto-db", "jgc_wrong", "SELECT 1");
    assert!(!text(&o).1.contains("starts at"), "{}", text(&o).1);
    sleep_past(start, Duration::from_millis(300));
    let o = p.psql("bob@auto-db", &secret, "SELECT 'in' || 'side'");
    let (so, se) = text(&o);
    assert!(o.status.success() && so.contains("inside"), "{so}{se}");
}
