//! Session recording through the SSH front end (SPEC "Recording"): a pty
//! session as asciicast whose output is exactly what the client got,
//! sealed by its digest in `session.ended`; exec and sftp markers with
//! `ssh = "full"`; input never recorded; the engineer told on stderr.

use crate::common;

use common::recording::*;
use common::sshd::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use serde_json::Value;
use std::process::Command;

/// The `session.ended` event of the one session of `p` on `target`,
/// once written.
fn ended(p: &SshProxy, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    wait_for("session.ended events", || {
        got = ended_events(&p.audit());
        got.len() >= n
    });
    got
}

#[test]
fn a_pty_session_is_recorded_exactly_and_sealed_by_its_digest() {
    let Some(p) = SshProxy::start_with(&section("terminal", "refuse")) else {
        return;
    };
    p.grant("auto-host");
    // Driven through a real pty (`script`), with a pty on the target too:
    // what the terminal shows is the channel's output plus the notice on
    // stderr, and the recording must replay that output byte for byte.
    // The secret is typed once the target has turned echo off, as at a
    // password prompt.
    let ssh: Vec<String> = {
        let c = p.ssh(
            "auto-host",
            &["-tt", "stty -echo; printf ready:; read s; stty echo; printf 'one\\r\\ntwo \\303\\251\\r\\n'; echo done"],
        );
        std::iter::once(c.get_program().to_string_lossy().into_owned())
            .chain(c.get_args().map(|a| shell_quote(&a.to_string_lossy())))
            .collect()
    };
    let mut c = Command::new("script")
        .args(["-q", "-f", "-e", "-c", &ssh.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = c.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut shown = Vec::new();
    let deadline = std::time::Instant::now() + HANG;
    let mut typed = false;
    while let Ok(chunk) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        shown.extend(chunk);
        if !typed && String::from_utf8_lossy(&shown).contains("ready:") {
            typed = true;
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), b"hunter2-typed-secret\r")
                .unwrap();
        }
    }
    let _ = wait_status(&mut c, HANG);
    let shown = String::from_utf8_lossy(&shown).into_owned();
    assert!(typed, "{shown}");
    assert!(
        shown.contains("jitgate: this session is recorded"),
        "{shown}"
    );
    let so = shown.replacen("jitgate: this session is recorded\r\n", "", 1);
    assert!(so.contains("two é"), "{so}");
    let events = ended(&p, 1);
    let e = &events[0];
    let d = detail(e);
    let sid = e["subject"].as_str().unwrap();
    let path = dir(&p.d.dir).join(format!("{sid}.cast"));
    assert!(path.is_file(), "{path:?}");
    assert_eq!(cast_output(&path), so, "the recording replays the output");
    let (header, lines) = cast(&path);
    assert_eq!(header["version"], 2);
    assert!(header["width"].as_u64().unwrap() > 0, "{header}");
    assert!(lines.iter().all(|l| l[0].as_f64().is_some()), "{lines:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("hunter2"),
        "input must not be recorded: {text}"
    );
    assert_eq!(d["recording_sha256"], sha256_hex(&path), "{d}");
    assert_eq!(
        d["recording_bytes"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir(&p.d.dir)), 0o700);
    let m = p.d.metrics();
    assert!(
        !m.contains("jitgate_recording_bytes_total{kind=\"ssh\"} 0"),
        "{m}"
    );
}

#[test]
fn full_mode_records_exec_and_sftp_operations_as_markers() {
    let Some(p) = SshProxy::start_with(&section("full", "refuse")) else {
        return;
    };
    p.grant("auto-host");
    let o = p.ssh("auto-host", &["echo from-exec"]).output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    let src = p.d.dir.join("up.bin");
    std::fs::write(&src, vec![7u8; 100_000]).unwrap();
    let remote = p.sshd.work.join("rec-up.bin");
    let batch = p.d.dir.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nrm {}\n",
            src.display(),
            remote.display(),
            remote.display()
        ),
    )
    .unwrap();
    let o = Command::new("sftp")
        .args(ssh_opts(&p.key))
        .args(["-P", &p.port.to_string(), "-b"])
        .arg(&batch)
        .arg("auto-host@127.0.0.1")
        .output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    let events = ended(&p, 2);
    let path_of =
        |e: &Value| dir(&p.d.dir).join(format!("{}.cast", e["subject"].as_str().unwrap()));
    let all: Vec<(Vec<String>, String)> = events
        .iter()
        .map(|e| (cast_markers(&path_of(e)), cast_output(&path_of(e))))
        .collect();
    let exec = all
        .iter()
        .find(|(m, _)| m.iter().any(|l| l == "exec: echo from-exec"))
        .unwrap_or_else(|| panic!("{all:?}"));
    assert_eq!(exec.1, "from-exec\n");
    let sftp = all
        .iter()
        .find(|(m, _)| m.iter().any(|l| l == "subsystem: sftp"))
        .unwrap_or_else(|| panic!("{all:?}"));
    let r = remote.display();
    assert!(
        sftp.0.contains(&format!("sftp write {r}: 100000 bytes")),
        "{:?}",
        sftp.0
    );
    assert!(sftp.0.contains(&format!("sftp remove {r}")), "{:?}", sftp.0);
    assert_eq!(sftp.1, "", "sftp's binary stream is not recorded as output");
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn a_session_that_never_started_leaves_no_recording() {
    let Some(p) = SshProxy::start_with(&section("full", "refuse")) else {
        return;
    };
    // auto-forged pins a wrong host key: admitted, then the target's
    // login fails, so the session never starts.
    p.grant("auto-forged");
    let o = p.ssh("auto-forged", &["echo never"]).output_within(HANG);
    assert!(!o.status.success(), "{:?}", out(&o));
    p.grant("auto-host");
    let o = p.ssh("auto-host", &["echo started"]).output_within(HANG);
    assert!(o.status.success(), "{:?}", out(&o));
    wait_for("session.ended", || !ended_events(&p.audit()).is_empty());
    let files = || -> Vec<String> {
        std::fs::read_dir(dir(&p.d.dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The started one's two files stay; the other's are removed.
    wait_for("only the started session's files", || files().len() == 2);
    let sid = ended_events(&p.audit())[0]["subject"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(files().iter().all(|f| f.starts_with(&sid)), "{:?}", files());
}
