//! The TCP tunnel end to end: a real echo upstream, the real `jitgate
//! connect`, and the daemon ending the session when the grant is revoked.

mod common;

use common::daemon::*;
use common::free_port;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An echo server on a free port, one thread per connection.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn revoking_a_grant_closes_the_tunneled_session_and_records_it() {
    let echo = echo_server();
    let tunnel = free_port();
    let extra = format!(
        "\n[listeners.tcp]\nlisten = \"127.0.0.1:{tunnel}\"\n\n[[targets]]\nname = \"auto-echo\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{echo}\"\n"
    );
    let d = Daemon::start_with(None, &extra);
    let grant = d.create_request(BOB, "auto-echo", "5m");
    let gid = grant["grant"]["id"].as_str().unwrap().to_string();
    let secret = d
        .post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "")
        .unwrap()
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let fp = d.get("/v1/whoami", Some(BOB)).unwrap().json()["tcp_tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    let local = free_port();
    let stderr_path = d.dir.join("connect.err");
    let mut connect = Command::new(BIN)
        .args([
            "connect",
            "auto-echo",
            "--proxy",
            &format!("127.0.0.1:{tunnel}"),
            "--listen",
            &format!("127.0.0.1:{local}"),
            "--fingerprint",
            &fp,
        ])
        .env("JITGATE_SECRET", &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .unwrap();
    wait_for("jitgate connect to listen", || {
        TcpStream::connect(("127.0.0.1", local)).is_ok()
    });

    let mut s = TcpStream::connect(("127.0.0.1", local)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"hello through the tunnel").unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello through the tunnel");

    let sessions = d.get("/v1/sessions", Some(DAVE)).unwrap().json();
    let live = sessions["sessions"].as_array().unwrap();
    assert_eq!(live.len(), 1, "{sessions}");
    assert_eq!(live[0]["user"], "bob");
    assert_eq!(live[0]["kind"], "tcp");

    let r = d
        .post(
            &format!("/v1/grants/{gid}/revoke"),
            Some(DAVE),
            r#"{"reason":"INC-42 closed"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["sessions_terminated"],
        1,
        "revoke returns after the session is closed"
    );

    // The engineer's local socket is closed, and `connect` says why and exits 1.
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected EOF after revoke, read {n} bytes"),
        Err(e) => assert_ne!(
            e.kind(),
            std::io::ErrorKind::WouldBlock,
            "socket still open after revoke"
        ),
    }
    let mut status = None;
    wait_for("jitgate connect to exit", || {
        status = connect.try_wait().unwrap();
        status.is_some()
    });
    assert_eq!(status.unwrap().code(), Some(1));
    let said = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        said.contains("access to auto-echo ended: grant revoked by dave (INC-42 closed)"),
        "{said}"
    );

    // Metrics and the audit log record the sessions and why they ended: the
    // readiness probe's connection was a real (short) session too.
    let m = d.metrics();
    assert!(
        m.contains(r#"jitgate_sessions_started_total{kind="tcp",target="auto-echo"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"jitgate_sessions_ended_total{kind="tcp",reason="revoked"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"jitgate_sessions_ended_total{kind="tcp",reason="client_closed"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"jitgate_termination_seconds_count{cause="revoked"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"jitgate_sessions_active{kind="tcp",target="auto-echo"} 0"#),
        "{m}"
    );
    wait_for("session audit events", || {
        let a = d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
        a.contains("session.started")
            && a.contains("session.ended")
            && a.contains(r#""reason":"revoked""#)
    });
}
