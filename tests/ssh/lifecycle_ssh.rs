//! Extension in place on SSH with the real ssh client: one channel running
//! one remote shell keeps working past the grant's first end (the same
//! remote process answers), its stderr says until when, and it is closed at
//! the new end with the farewell.

use crate::common;

use common::daemon::*;
use common::lifecycle::{extend_now, grant_end, now_ms, sleep_past, wait_until};
use common::sshproxy::*;
use common::wait::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if let Ok(mut s) = sink.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
    seen
}

fn text(s: &Arc<Mutex<String>>) -> String {
    s.lock().map(|s| s.clone()).unwrap_or_default()
}

#[test]
fn an_ssh_channel_outlives_its_first_end_with_the_same_remote_shell_and_ends_at_the_new_one() {
    let Some(p) = SshProxy::start() else { return };
    // Long enough for ssh to start, answer and be extended before the
    // first end on a loaded machine.
    let gid = p.grant_for("warn-host", "15s");
    let first_end = grant_end(&p.d, &gid);
    // One exec channel: a shell that names its pid, then answers each line
    // with it, so an answer from the same pid is the same channel.
    let script = "echo pid:$$; while read l; do echo got:$l:$$; done";
    let mut child = p
        .ssh("warn-host", &[script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = collect(child.stdout.take().expect("stdout"));
    let stderr = collect(child.stderr.take().expect("stderr"));
    let bound = Duration::from_secs(30);
    wait_until("the remote shell's pid", bound, || {
        text(&stdout).contains("pid:")
    });
    let pid = text(&stdout)
        .lines()
        .find_map(|l| l.strip_prefix("pid:").map(str::to_string))
        .expect("pid line");
    writeln!(stdin, "one").expect("write");
    let want = format!("got:one:{pid}");
    wait_until("the first answer", bound, || text(&stdout).contains(&want));

    let new_end = extend_now(&p.d, BOB, &gid, "8s");
    assert_eq!(new_end, first_end + 8_000);
    let until = jitgate::clock::rfc3339(new_end);
    let notice = format!("jitgate: access to warn-host extended until {until}");
    wait_until("the extension on stderr", bound, || {
        text(&stderr).contains(&notice)
    });

    // Past the first end: the same shell on the same channel answers.
    sleep_past(first_end, Duration::from_millis(500));
    writeln!(stdin, "two").expect("write after the first end");
    let want = format!("got:two:{pid}");
    wait_until("an answer after the first end", bound, || {
        text(&stdout).contains(&want)
    });
    let audit = p.audit();
    assert_eq!(
        audit.matches("\"session.started\"").count(),
        1,
        "one session, never reconnected: {audit}"
    );

    // Closed at the new end with the farewell.
    let status = wait_status(&mut child, HANG);
    assert!(now_ms() >= new_end, "closed before its new end");
    assert_eq!(status.code(), Some(255), "{}", text(&stderr));
    wait_until("the farewell", bound, || {
        text(&stderr).contains("jitgate: access to warn-host ended: grant expired")
    });
    let se = text(&stderr);
    assert!(
        se.find(&notice) < se.find("ended: grant expired"),
        "the notice came before the end: {se}"
    );
    eprintln!("stdout:\n{}stderr:\n{se}", text(&stdout));
}

#[test]
fn a_scheduled_grant_is_refused_with_its_start_then_works() {
    let Some(p) = SshProxy::start() else { return };
    let (_, start, o) = common::schedule::attempt_before_start(&p.d, BOB, "auto-host", |_| {
        p.ssh("auto-host", &["echo", "in"]).output_within(HANG)
    });
    let until = jitgate::clock::rfc3339(start);
    let (so, se) = out(&o);
    assert!(!o.status.success(), "{so}{se}");
    assert!(se.contains(&format!("starts at {until}")), "{se}");
    sleep_past(start, Duration::from_millis(300));
    let o = p.ssh("auto-host", &["echo", "in"]).output_within(HANG);
    let (so, se) = out(&o);
    assert!(o.status.success() && so.contains("in"), "{so}{se}");
}
