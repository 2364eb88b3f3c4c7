//! Every TLS listener speaks TLS 1.2 and 1.3 only: a real OpenSSL client
//! restricted to TLS 1.0 or 1.1 (with its own security level lowered so it
//! really offers them) gets an alert from the server, while TLS 1.2 and 1.3
//! complete. The admin API listens on plain HTTP on loopback (SPEC) and is
//! not a TLS listener.

mod common;

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
