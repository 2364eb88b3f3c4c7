//! What the SSH front end refuses, against a real OpenSSH sshd with the real
//! ssh client: channels opened while a grant ends, port forwarding to a
//! destination the target does not list, X11 forwarding, and what a client
//! learns before its key is proven; and that names a client chooses reach
//! logs and the audit bounded and printable.

use crate::common;

use common::wait::{OutputWithin, HANG};

use common::daemon::*;
use common::free_port;
use common::sshd::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits for `child` at most `limit`; a child still running then is
/// killed and the test fails: a client left waiting is the bug.
fn output_within(child: Child, limit: Duration, what: &str) -> Output {
    let mut child = child;
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("{what} still waiting after {limit:?}: {:?}", out(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of processes whose command line matches the regex `pattern`.
fn pids(pattern: &str) -> Vec<String> {
    Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn audit_events(p: &SshProxy) -> Vec<serde_json::Value> {
    let a: serde_json::Value = serde_json::from_str(&p.audit()).unwrap();
    a["events"].as_array().cloned().unwrap_or_default()
}

/// A revoke takes a while to carry out (the farewell waits for the
/// target). Channels a multiplexing client opens meanwhile must not start
/// anything on the target, and everything started before must be gone
/// once the revoke has returned. Non-pty commands: sshd does not stop them
/// when the proxy's connection to it drops.
#[test]
fn channels_opened_while_a_revoke_runs_leave_nothing_running() {
    let Some(p) = SshProxy::start() else { return };
    let gid = p.grant("auto-host");
    let tag = free_port();
    // Short: a Unix socket path is limited to about 100 bytes.
    let ctl = std::env::temp_dir().join(format!("jg-mux-{tag}"));
    let ctl_opt = format!("ControlPath={}", ctl.display());
    let master = p
        .ssh(
            "auto-host",
            &["-N", "-o", "ControlMaster=yes", "-o", &ctl_opt],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the control socket", || ctl.exists());
    // Unique command lines that end on their own after five minutes.
    let cmd = move |i: u32| format!("sleep 300.{tag}{i:05}");
    let pattern = format!("^sleep 300\\.{tag}");
    let exec = {
        let ctl = ctl.clone();
        move |i: u32| {
            Command::new("ssh")
                .args(["-S"])
                .arg(&ctl)
                .args(["-o", "ControlMaster=no", "-o", "BatchMode=yes"])
                .args(["auto-host@127.0.0.1", &cmd(i)])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        }
    };
    let children = Arc::new(Mutex::new(vec![exec(0)]));
    wait_for("the first command to run", || !pids(&pattern).is_empty());
    // New exec channels in a tight loop from now until the revoke returns.
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (stop, children) = (stop.clone(), children.clone());
        std::thread::spawn(move || {
            let mut i = 1;
            while !stop.load(Ordering::Acquire) && i < 2000 {
                let c = exec(i);
                children.lock().unwrap().push(c);
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let r =
        p.d.post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"mux"}"#,
        )
        .unwrap();
    stop.store(true, Ordering::Release);
    looper.join().unwrap();
    assert_eq!(
        r.json()["sessions_terminated"],
        1,
        "{}\n{}",
        r.body,
        p.d.logs()
    );
    // Every client ends with the master's connection.
    for c in children.lock().unwrap().drain(..) {
        output_within(c, Duration::from_secs(30), "a multiplexed ssh");
    }
    let st = output_within(master, Duration::from_secs(30), "the master");
    assert!(!st.status.success());
    // A process still there well after the revoke returned was started
    // after the farewell and survived it (each runs for five minutes):
    // fail, and clean it up. The ones being stopped may take a moment to
    // go on a loaded machine, so wait for them, bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids(&pattern).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = pids(&pattern);
    let what = Command::new("ps")
        .args(["-o", "pid,pgid,sid,ppid,args", "-p", &left.join(",")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for pid in &left {
        let _ = Command::new("kill").arg(pid).status();
    }
    assert!(
        left.is_empty(),
        "{} command(s) still running on the target after the revoke:\n{what}\nsshd:\n{}\njitgate:\n{}",
        left.len(),
        std::fs::read_to_string(p.sshd.dir.path().join("sshd.log")).unwrap_or_default(),
        p.d.logs()
    );
    let _ = std::fs::remove_file(&ctl);
}

/// A command without a pty that ignores SIGTERM is still stopped at the
/// grant's end: the farewell sends KILL when TERM did not end it.
#[test]
fn a_command_ignoring_sigterm_is_killed_at_the_end() {
    let Some(p) = SshProxy::start() else { return };
    let gid = p.grant("auto-host");
    let marker = format!("sleep 300.{}", free_port());
    // The sleep inherits the ignored TERM (forked or exec'd by the shell).
    let script = format!("trap '' TERM; {marker}");
    let client = p
        .ssh("auto-host", &[&script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pattern = format!("^{}", marker.replace('.', "\\."));
    wait_for("the command to run", || !pids(&pattern).is_empty());
    let r =
        p.d.post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"stubborn"}"#,
        )
        .unwrap();
    assert_eq!(r.json()["sessions_terminated"], 1, "{}", r.body);
    output_within(client, Duration::from_secs(30), "the ssh client");
    // Generous: only a command that is never stopped fails this.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids(&pattern).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = pids(&pattern);
    for pid in &left {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    assert!(
        left.is_empty(),
        "a command ignoring TERM outlived the grant"
    );
}

#[test]
fn forwarding_reaches_only_the_destinations_the_target_lists() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let unlisted = echo_server();
    let (ok_port, no_port) = (free_port(), free_port());
    // INFO first: ssh keeps the first value of an option, and prints a
    // refused open at that level.
    let fwd = Command::new("ssh")
        .args(["-o", "LogLevel=INFO"])
        .args(ssh_opts(&p.key))
        .args(["-p", &p.port.to_string(), "auto-host@127.0.0.1"])
        .args([
            "-N",
            "-L",
            &format!("127.0.0.1:{ok_port}:127.0.0.1:{}", p.echo),
            "-L",
            &format!("127.0.0.1:{no_port}:127.0.0.1:{unlisted}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut conn = None;
    wait_for("the forwarded ports to listen", || {
        conn = std::net::TcpStream::connect(("127.0.0.1", ok_port)).ok();
        conn.is_some() && std::net::TcpStream::connect(("127.0.0.1", no_port)).is_ok()
    });
    // The listed destination echoes.
    let mut s = conn.unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"through the target\n").unwrap();
    let mut got = [0u8; 19];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"through the target\n");
    // The unlisted one is closed without a byte of it.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", no_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(b"hello?\n");
    let mut buf = [0u8; 16];
    assert!(
        matches!(s.read(&mut buf), Ok(0) | Err(_)),
        "an unlisted destination answered"
    );
    wait_for("both opens to be audited", || {
        let e = audit_events(&p);
        let has = |action: &str, port: u16| {
            e.iter().any(|e| {
                e["action"] == action
                    && e["detail"]["destination"] == format!("127.0.0.1:{port}")
                    && e["subject"] == "auto-host"
            })
        };
        has("ssh.forward", p.echo) && has("ssh.forward_refused", unlisted)
    });
    let mut fwd = fwd;
    let _ = fwd.kill();
    let o = fwd.wait_with_output().unwrap();
    assert!(
        out(&o).1.contains("administratively prohibited"),
        "{:?}",
        out(&o)
    );
}

#[test]
fn x11_forwarding_is_refused_and_the_command_still_runs() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    // INFO first: ssh keeps the first value of an option, and prints the
    // refusal at that level.
    let child = Command::new("ssh")
        .args(["-o", "LogLevel=INFO", "-o", "ForwardX11=yes"])
        .args([
            "-o",
            "ForwardX11Trusted=yes",
            "-o",
            "XAuthLocation=/nonexistent",
        ])
        .args(ssh_opts(&p.key))
        .args([
            "-p",
            &p.port.to_string(),
            "auto-host@127.0.0.1",
            "echo x11-less",
        ])
        .env("DISPLAY", "127.0.0.1:97")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = output_within(child, Duration::from_secs(30), "ssh -X");
    let (so, se) = out(&o);
    assert!(o.status.success(), "{so}{se}");
    assert_eq!(so, "x11-less\n", "{se}");
    assert!(se.contains("X11 forwarding request failed"), "{se}");
}

/// Before the key is proven the proxy says nothing about targets or
/// users: an unknown key gets the same answer whatever name it asks for.
#[test]
fn an_unknown_key_learns_nothing_about_targets_or_users() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let stranger = p.d.dir.join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    // A target with a grant, a target without, a missing one, a user's
    // name (a jump login for that user's key).
    let names = ["auto-host", "warn-host", "no-such-host", "bob"];
    let answers: Vec<(Option<i32>, String)> = names
        .iter()
        .map(|name| {
            let o = Command::new("ssh")
                .args(ssh_opts(&stranger))
                .args([
                    "-p",
                    &p.port.to_string(),
                    &format!("{name}@127.0.0.1"),
                    "true",
                ])
                .stdin(Stdio::null())
                .output_within(HANG);
            let se = out(&o).1.replace(&format!("{name}@"), "NAME@");
            (o.status.code(), se)
        })
        .collect();
    assert_eq!(answers[0].0, Some(255), "{answers:?}");
    assert!(
        answers[0].1.contains("Permission denied (publickey)"),
        "{answers:?}"
    );
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // The details go to the audit, where an operator can see them (written
    // off the connection's task: the last may land after its client exits).
    let failed = || -> Vec<_> {
        audit_events(&p)
            .into_iter()
            .filter(|e| e["action"] == "auth.failed")
            .collect()
    };
    wait_for("every refusal audited", || failed().len() >= names.len());
    let failed = failed();
    assert_eq!(failed.len(), names.len(), "{failed:?}");
    for name in names {
        assert!(failed.iter().any(|e| e["subject"] == name), "{failed:?}");
    }
}

/// The SSH user name is the client's choice: escape sequences, line ends
/// and sheer length are cut down before it is logged or audited.
#[test]
fn hostile_user_names_reach_logs_and_audit_bounded_and_printable() {
    let Some(p) = SshProxy::start() else { return };
    let hostile = format!("x\x1b[2J\x1b]0;owned\x07\rFAKE {}", "y".repeat(300));
    let stranger = p.d.dir.join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    // Unknown key (audited before authentication), then bob's known key
    // (an unknown target, logged and audited after it). ssh refuses such a
    // name on its command line, not from a config file.
    for key in [&stranger, &p.key] {
        let cfg = p.d.dir.join("hostile_config");
        std::fs::write(
            &cfg,
            format!(
                "Host hostile\n  HostName 127.0.0.1\n  Port {}\n  User \"{hostile}\"\n",
                p.port
            ),
        )
        .unwrap();
        let o = Command::new("ssh")
            .arg("-F")
            .arg(&cfg)
            .args(ssh_opts(key))
            .args(["hostile", "true"])
            .stdin(Stdio::null())
            .output_within(HANG);
        assert_ne!(o.status.code(), Some(0), "{:?}", out(&o));
        assert!(!out(&o).1.contains("invalid characters"), "{:?}", out(&o));
    }
    wait_for("two auth.failed events", || {
        audit_events(&p)
            .iter()
            .filter(|e| e["action"] == "auth.failed")
            .count()
            >= 2
    });
    for e in audit_events(&p) {
        if e["action"] != "auth.failed" {
            continue;
        }
        let subject = e["subject"].as_str().unwrap_or_default();
        assert!(subject.starts_with("x?[2J?]0;owned??FAKE y"), "{e}");
        assert!(subject.chars().count() <= 65, "{e}");
        let reason = e["detail"]["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains('\x1b') && !reason.contains('\r'), "{e}");
    }
    let logs = p.d.logs();
    assert!(
        !logs.contains('\x1b')
            && !logs
                .contains("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"),
        "{logs}"
    );
}
