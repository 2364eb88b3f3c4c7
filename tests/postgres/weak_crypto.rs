//! Old protocol versions and weak algorithms are refused by the server
//! itself, checked with real OpenSSL and OpenSSH clients.
//!
//! Every TLS listener speaks TLS 1.2 and 1.3 only: a real OpenSSL client
//! restricted to TLS 1.0 or 1.1 (with its own security level lowered so it
//! really offers them) gets an alert from the server, while TLS 1.2 and 1.3
//! complete. The admin API listens on plain HTTP on loopback (SPEC) and is
//! not a TLS listener.

use crate::common;

use common::daemon::Daemon;
use common::free_port;
use common::pgproxy::PgProxy;
use common::tunnel::Tunnel;
use std::process::{Command, Stdio};

/// Runs `openssl s_client` with `version` against `port`; (handshake
/// completed, everything it printed).
fn s_client(port: u16, version: &str, starttls: Option<&str>) -> Option<(bool, String)> {
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        version,
    ]);
    if version != "-tls1_3" {
        c.args(["-cipher", "DEFAULT:@SECLEVEL=0"]);
    }
    if let Some(proto) = starttls {
        c.args(["-starttls", proto]);
    }
    let out = match c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("JITGATE_E2E").as_deref() != Ok("require"),
                "openssl is required: {e}"
            );
            eprintln!("SKIP: openssl not runnable: {e}");
            return None;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let done = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    Some((done, text))
}

fn check(port: u16, starttls: Option<&str>) {
    for old in ["-tls1", "-tls1_1"] {
        let Some((done, text)) = s_client(port, old, starttls) else {
            return;
        };
        assert!(!done, "{old} was negotiated:\n{text}");
        // Refused by the server with an alert (rustls answers a ClientHello
        // without TLS 1.2 with handshake_failure), not by the client's own
        // settings before sending anything.
        assert!(
            text.contains("SSL alert number"),
            "{old}: no alert from the server:\n{text}"
        );
    }
    for good in ["-tls1_2", "-tls1_3"] {
        let Some((done, text)) = s_client(port, good, starttls) else {
            return;
        };
        assert!(done, "{good} did not complete:\n{text}");
    }
}

#[test]
fn the_tunnel_listener_refuses_tls_1_0_and_1_1() {
    let t = Tunnel::start();
    check(t.port, None);
}

#[test]
fn the_postgres_listener_refuses_tls_1_0_and_1_1() {
    let Some(p) = PgProxy::start() else {
        return;
    };
    check(p.port, Some("postgres"));
}

/// `ssh` to an SSH listener with one extra `-o`; (exit status, stderr).
fn ssh(port: u16, option: Option<&str>) -> Option<(i32, String)> {
    let mut c = Command::new("ssh");
    c.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityFile=/dev/null",
        "-p",
        &port.to_string(),
    ]);
    if let Some(o) = option {
        c.args(["-o", o]);
    }
    c.args(["nobody@127.0.0.1", "true"]);
    match c.stdin(Stdio::null()).output() {
        Ok(o) => Some((
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )),
        Err(e) => {
            assert!(
                std::env::var("JITGATE_E2E").as_deref() != Ok("require"),
                "ssh is required: {e}"
            );
            eprintln!("SKIP: ssh not runnable: {e}");
            None
        }
    }
}

#[test]
fn the_ssh_listener_refuses_weak_ciphers_kex_and_host_key_types() {
    let port = free_port();
    let _d = Daemon::start_with(
        None,
        &format!("\n[listeners.ssh]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    // Control: with OpenSSH's defaults the handshake completes and only
    // authentication fails, so the refusals below are about algorithms.
    let Some((_, err)) = ssh(port, None) else {
        return;
    };
    assert!(err.contains("Permission denied"), "{err}");
    for (option, refusal) in [
        ("Ciphers=aes128-cbc,3des-cbc", "no matching cipher"),
        ("Ciphers=aes128-ctr,aes256-ctr", "no matching cipher"),
        (
            "KexAlgorithms=diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
            "no matching key exchange method",
        ),
        (
            "HostKeyAlgorithms=ssh-rsa,ssh-dss",
            "no matching host key type",
        ),
    ] {
        let (code, err) = ssh(port, Some(option)).unwrap();
        assert_ne!(code, 0, "{option}");
        assert!(err.contains(refusal), "{option}: {err}");
    }
}
