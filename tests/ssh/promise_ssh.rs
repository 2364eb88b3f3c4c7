//! No SSH session outlives its grant, whatever ends it: revoke, terminate,
//! lock, or a reload that removes the target. For each, four sessions at
//! once under one grant (a shell running a command, an `ssh -L` forwarded
//! connection, an `ssh -W` stream, an interactive sftp) all end: the clients
//! exit, the shell's farewell names the reason, the forwarded connection is
//! closed, nothing keeps running on the target, and the audit says why.

use crate::common;

use common::causes::{ended_reasons, Cause, ALL};
use common::free_port;
use common::sshd::ssh_opts;
use common::sshproxy::*;
use common::tunnel::{closed_by_peer, wait_for};
use common::wait::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Collects what a child writes to `r`, in the background.
fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 4096];
        while let Ok(n) = r.read(&mut b) {
            if n == 0 {
                break;
            }
            out.lock().unwrap().extend_from_slice(&b[..n]);
        }
    });
    seen
}

fn text(seen: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&seen.lock().unwrap()).into_owned()
}

fn four_sessions_are_ended_by(cause: Cause) {
    let Some(p) = SshProxy::start() else { return };
    let gid = p.grant("auto-host");
    let live = |n: usize| p.d.session_ids().len() == n;

    // 1. A shell running a command.
    let remote = RemoteSleep::new();
    let mut shell = remote.start(p.ssh("auto-host", &["-tt", &remote.cmd]), Stdio::piped());
    let shell_err = collect(shell.stderr.take().unwrap());
    let shell_out = collect(shell.stdout.take().unwrap());

    // 2. ssh -L, with a forwarded connection that works.
    let local = free_port();
    let mut fwd = p
        .ssh(
            "auto-host",
            &[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                &format!("127.0.0.1:{local}:127.0.0.1:{}", p.echo),
            ],
        )
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut conn = None;
    wait_for("the forwarded port to listen", || {
        conn = std::net::TcpStream::connect(("127.0.0.1", local)).ok();
        conn.is_some()
    });
    let mut conn = conn.unwrap();
    conn.set_read_timeout(Some(HANG)).unwrap();
    conn.write_all(b"through -L\n").unwrap();
    let mut b = [0u8; 11];
    conn.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"through -L\n");

    // 3. ssh -W to the echo server.
    let mut w = p
        .ssh("auto-host", &["-W", &format!("127.0.0.1:{}", p.echo)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut w_in = w.stdin.take().unwrap();
    let w_out = collect(w.stdout.take().unwrap());
    w_in.write_all(b"through -W\n").unwrap();
    wait_for("the -W echo", || text(&w_out) == "through -W\n");

    // 4. An interactive sftp, commands read from a pipe kept open.
    let mut sftp = Command::new("sftp")
        .args(ssh_opts(&p.key))
        .args(["-P", &p.port.to_string(), "-b", "-"])
        .arg("auto-host@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sftp_in = sftp.stdin.take().unwrap();
    let sftp_out = collect(sftp.stdout.take().unwrap());
    sftp_in.write_all(b"pwd\n").unwrap();
    wait_for("sftp to answer", || {
        text(&sftp_out).contains("Remote working directory")
    });
    wait_for("four live sessions", || live(4));

    if let Some(n) = cause.apply(&p.d, "bob", &gid, "auto-host") {
        assert_eq!(n, 4, "{cause:?}");
    }

    let exited = |c: &mut Child, what: &str| {
        let st = wait_status(c, HANG);
        assert!(!st.success(), "{cause:?}: {what} exited with {st}");
        st
    };
    let st = exited(&mut shell, "the shell");
    let farewell = format!("jitgate: access to auto-host ended: {}", cause.farewell());
    wait_for("the shell's farewell", || {
        (text(&shell_err) + &text(&shell_out)).contains(&farewell)
    });
    assert_eq!(st.code(), Some(255), "{cause:?}");
    exited(&mut fwd, "ssh -L");
    assert!(
        closed_by_peer(&mut conn),
        "{cause:?}: the forwarded connection stayed open"
    );
    // ssh -W exits 0 when its stream is closed, as for any closed stream:
    // that it exits, and echoes nothing more, is what tells.
    wait_status(&mut w, HANG);
    // sftp waits for its next command on stdin; the next one that needs
    // the server (pwd is answered from a cache) finds the connection gone.
    let _ = sftp_in.write_all(b"ls\n");
    exited(&mut sftp, "sftp");
    // The -W stream echoed nothing more after the end.
    let _ = w_in.write_all(b"after the end\n");
    assert_eq!(text(&w_out), "through -W\n", "{cause:?}");
    remote.wait_gone();
    wait_for("no live session", || live(0));
    wait_for("four session ends audited", || {
        ended_reasons(&p.d).len() == 4
    });
    assert_eq!(ended_reasons(&p.d), [cause.reason(); 4], "{cause:?}");
}

#[test]
fn every_way_of_ending_access_ends_shell_forwards_w_and_sftp() {
    for cause in ALL {
        four_sessions_are_ended_by(cause);
    }
}
