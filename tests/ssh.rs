//! The SSH front end against a real OpenSSH sshd with the real ssh, scp
//! and sftp clients: exec, pty, sftp, port forwarding, refusals, and the
//! farewell and close at the grant's end.

mod common;

use common::daemon::*;
use common::free_port;
use common::sshd::*;
use common::tunnel::wait_for;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct SshProxy {
    sshd: Sshd,
    d: Daemon,
    port: u16,
    key: std::path::PathBuf,
}

impl SshProxy {
    fn start() -> Option<SshProxy> {
        let sshd = Sshd::start()?;
        let port = free_port();
        let mut extra = format!("\n[listeners.ssh]\nlisten = \"127.0.0.1:{port}\"\n");
        extra += &sshd.target("auto-host");
        // The same sshd under a wrong pinned key.
        extra += &sshd.target("auto-forged").replace(
            &sshd.host_key,
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl forged",
        );
        let d = Daemon::start_with(None, &extra);
        let key = bob_key(&d.dir);
        Some(SshProxy { sshd, d, port, key })
    }

    fn ssh(&self, target: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args(ssh_opts(&self.key))
            .args(["-p", &self.port.to_string()])
            .arg(format!("{target}@127.0.0.1"))
            .args(args);
        c
    }

    fn grant(&self, target: &str) -> String {
        let r = self.d.create_request(BOB, target, "5m");
        r["grant"]["id"].as_str().unwrap().to_string()
    }
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn exec_relays_stdout_stderr_and_exit_status() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let o = p
        .ssh("auto-host", &["echo hello; echo oops >&2; exit 7"])
        .output()
        .unwrap();
    let (so, se) = out(&o);
    assert_eq!(o.status.code(), Some(7), "{se}");
    assert_eq!(so, "hello\n");
    assert!(se.contains("oops"), "{se}");
    // stdin is relayed in order, even when sent before the command runs.
    let mut c = p
        .ssh("auto-host", &["wc -c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), &vec![b'x'; 3_000_000]).unwrap();
    drop(c.stdin.take());
    let o = c.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "3000000");
    let m = p.d.metrics();
    assert!(
        m.contains(r#"jitgate_sessions_started_total{kind="ssh",target="auto-host"} 2"#),
        "{m}"
    );
}

#[test]
fn sftp_scp_and_port_forwarding_work() {
    let Some(p) = SshProxy::start() else { return };
    p.grant("auto-host");
    let src = p.d.dir.join("payload.bin");
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let remote = p.sshd.dir.path().join("uploaded.bin");
    let back = p.d.dir.join("back.bin");
    let batch = p.d.dir.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            src.display(),
            remote.display(),
            remote.display(),
            back.display()
        ),
    )
    .unwrap();
    let o = Command::new("sftp")
        .args(ssh_opts(&p.key))
        .args(["-P", &p.port.to_string(), "-b"])
        .arg(&batch)
        .arg("auto-host@127.0.0.1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    assert_eq!(std::fs::read(&back).unwrap(), data);

    let scp_back = p.d.dir.join("scp.bin");
    let o = Command::new("scp")
        .args(ssh_opts(&p.key))
        .args(["-P", &p.port.to_string()])
        .arg(format!("auto-host@127.0.0.1:{}", remote.display()))
        .arg(&scp_back)
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    assert_eq!(std::fs::read(&scp_back).unwrap(), data);

    // ssh -W: a stream to the target's own sshd, opened by the target.
    let o = p
        .ssh("auto-host", &["-W", &format!("127.0.0.1:{}", p.sshd.port)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("SSH-2.0-OpenSSH"),
        "{:?}",
        out(&o)
    );
}

#[test]
fn refusals_are_clear() {
    let Some(p) = SshProxy::start() else { return };
    // No grant yet.
    let o = p.ssh("auto-host", &["true"]).output().unwrap();
    let (_, se) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(
        se.contains("access to auto-host refused: no active grant for bob"),
        "{se}"
    );
    // A target whose host key does not match the pinned one.
    p.grant("auto-forged");
    let o = p.ssh("auto-forged", &["true"]).output().unwrap();
    let (_, se) = out(&o);
    assert!(se.contains("does not match the pinned"), "{se}");
    let logs = p.d.logs();
    assert!(logs.contains("does not match the pinned"), "{logs}");
    // An unknown key is not let in at all.
    let stranger = p.d.dir.join("stranger");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    let o = Command::new("ssh")
        .args(ssh_opts(&stranger))
        .args(["-p", &p.port.to_string(), "auto-host@127.0.0.1", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert!(out(&o).1.contains("Permission denied"), "{:?}", out(&o));
    let a = p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
    assert!(a.contains("auth.failed"), "{a}");
}

#[test]
fn revoke_says_farewell_and_closes_both_sides() {
    let Some(p) = SshProxy::start() else { return };
    let gid = p.grant("auto-host");
    let marker = format!("sleep 6{}", free_port());
    let child = p
        .ssh("auto-host", &["-tt", &marker])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the remote command to run", || {
        Command::new("pgrep")
            .args(["-x", "-f", &marker])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let r =
        p.d.post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"INC-42 closed"}"#,
        )
        .unwrap();
    assert_eq!(r.json()["sessions_terminated"], 1, "{}", r.body);
    let o = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        all.contains("jitgate: access to auto-host ended: grant revoked by dave (INC-42 closed)"),
        "{all}"
    );
    assert_ne!(o.status.code(), Some(0));
    // Nothing keeps running on the target.
    wait_for("the remote command to be gone", || {
        !Command::new("pgrep")
            .args(["-x", "-f", &marker])
            .output()
            .is_ok_and(|o| o.status.success())
    });
}

#[test]
fn a_client_that_stops_reading_is_still_closed_at_revoke() {
    let Some(p) = SshProxy::start() else { return };
    let gid = p.grant("auto-host");
    // Streams forever into a pipe nobody reads.
    let mut child = p
        .ssh("auto-host", &["cat /dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the session to start", || {
        p.d.get("/v1/sessions", Some(DAVE)).unwrap().json()["sessions"]
            .as_array()
            .is_some_and(|s| s.len() == 1)
    });
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    let r =
        p.d.post(&format!("/v1/grants/{gid}/revoke"), Some(DAVE), "{}")
            .unwrap();
    assert_eq!(r.json()["sessions_terminated"], 1, "{}", r.body);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let mut code = None;
    wait_for("ssh to exit", || {
        code = child.try_wait().unwrap();
        code.is_some()
    });
}
