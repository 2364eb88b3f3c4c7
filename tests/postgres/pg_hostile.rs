//! Hostile input on the PostgreSQL listener: garbage, truncated and
//! oversized startup packets and messages, a startup that never finishes,
//! and an authenticated client that never reads its results.

use crate::common;

use bytes::BytesMut;
use common::daemon::*;
use common::pgproxy::*;
use common::tunnel::{closed_by_peer, wait_for};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PROTOCOL_ERRORS: &str =
    r#"jitgate_connections_rejected_total{kind="postgres",reason="protocol_error"}"#;

fn metric(p: &PgProxy, sample: &str) -> f64 {
    p.d.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn raw(p: &PgProxy) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn startup(p: &PgProxy, user: &str) -> Vec<u8> {
    let mut b = BytesMut::new();
    frontend::startup_message([("user", user), ("database", &p.db)], &mut b).unwrap();
    b.to_vec()
}

/// Reads one backend message: (tag, body).
fn read_msg(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 5];
    s.read_exact(&mut h).unwrap();
    let len = i32::from_be_bytes(h[1..5].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).unwrap();
    (h[0], body)
}

#[test]
fn garbage_truncated_and_oversized_startups_are_refused() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("oversized length", 1_000_000i32.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        ("unknown version", {
            let mut v = 12i32.to_be_bytes().to_vec();
            v.extend_from_slice(&(9i32 << 16).to_be_bytes());
            v.extend_from_slice(&[0, 0, 0, 0]);
            v
        }),
        ("parameters without terminator", {
            let mut v = 17i32.to_be_bytes().to_vec();
            v.extend_from_slice(&196_608i32.to_be_bytes());
            v.extend_from_slice(b"user\0bob");
            v.push(b'x');
            v
        }),
    ];
    let n = cases.len();
    for (what, bytes) in cases {
        let mut s = raw(&p);
        s.write_all(&bytes).unwrap();
        assert!(closed_by_peer(&mut s), "{what}: left open");
    }
    // Truncated: the length promises more than ever arrives, then EOF.
    let mut s = raw(&p);
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&[0, 3, 0, 0]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_by_peer(&mut s));
    wait_for("rejections counted", || {
        metric(&p, PROTOCOL_ERRORS) == (n + 1) as f64
    });
}

#[test]
fn a_startup_that_never_finishes_is_cut_off() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, _secret) = bob_grant(&p);
    let t0 = Instant::now();
    // Half a startup packet, then silence.
    let mut half = raw(&p);
    half.write_all(&[0, 0, 0, 40, 0, 3]).unwrap();
    // A complete startup, then never answering the SCRAM challenge.
    let mut mute = raw(&p);
    mute.write_all(&startup(&p, "bob@auto-db")).unwrap();
    assert!(closed_by_peer(&mut half));
    assert!(closed_by_peer(&mut mute));
    assert!(t0.elapsed() < Duration::from_secs(25), "{:?}", t0.elapsed());
    wait_for("both counted as protocol errors", || {
        metric(&p, PROTOCOL_ERRORS) == 2.0
    });
}

#[test]
fn an_oversized_authentication_message_gets_a_protocol_error() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, _secret) = bob_grant(&p);
    let mut s = raw(&p);
    s.write_all(&startup(&p, "bob@auto-db")).unwrap();
    let (tag, _) = read_msg(&mut s);
    assert_eq!(tag, b'R');
    // A SASL response claiming 100 MB.
    s.write_all(b"p").unwrap();
    s.write_all(&100_000_000i32.to_be_bytes()).unwrap();
    let (tag, body) = read_msg(&mut s);
    assert_eq!(tag, b'E');
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("08P01") && text.contains("too large"),
        "{text}"
    );
    assert!(closed_by_peer(&mut s));
}

/// Logs in over plaintext with SCRAM, as a minimal client.
fn login(p: &PgProxy, secret: &str) -> TcpStream {
    let mut s = raw(p);
    s.write_all(&startup(p, "bob@auto-db")).unwrap();
    let (tag, _) = read_msg(&mut s);
    assert_eq!(tag, b'R');
    let mut scram = ScramSha256::new(secret.as_bytes(), ChannelBinding::unsupported());
    let mut b = BytesMut::new();
    frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut b).unwrap();
    s.write_all(&b).unwrap();
    let (_, body) = read_msg(&mut s);
    scram.update(&body[4..]).unwrap();
    b.clear();
    frontend::sasl_response(scram.message(), &mut b).unwrap();
    s.write_all(&b).unwrap();
    let (_, body) = read_msg(&mut s);
    scram.finish(&body[4..]).unwrap();
    loop {
        let (tag, _) = read_msg(&mut s);
        if tag == b'Z' {
            return s;
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_client_that_never_reads_is_backpressured_and_still_closed_at_revoke() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (gid, secret) = bob_grant(&p);
    let mut s = login(&p, &secret);
    let pid = p.d.child.as_ref().unwrap().id();
    let before = rss_kib(pid);
    // About 2 GB of results, never read.
    let mut b = BytesMut::new();
    frontend::query(
        "SELECT repeat('x', 1000000) FROM generate_series(1, 2000)",
        &mut b,
    )
    .unwrap();
    s.write_all(&b).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let during = rss_kib(pid);
    assert!(
        during < before + 64 * 1024,
        "the proxy buffered: RSS {before} KiB -> {during} KiB"
    );
    let t0 = Instant::now();
    let r =
        p.d.post(&format!("/v1/grants/{gid}/revoke"), Some(DAVE), "{}")
            .unwrap();
    assert_eq!(r.json()["sessions_terminated"], 1, "{}", r.body);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a non-reading client delayed the close: {:?}",
        t0.elapsed()
    );
    assert!(closed_by_peer(&mut s));
    wait_for("the backend to exit", || p.backends().is_empty());
}

/// A plaintext connection from `source` (any 127.0.0.0/8 address works on
/// Linux loopback) to the proxy.
fn raw_from(p: &PgProxy, source: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let addr = format!("127.0.0.1:{}", p.port).parse().unwrap();
        tokio::time::timeout(Duration::from_secs(20), sock.connect(addr))
            .await
            .expect("connect within 20 s")
            .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One SCRAM login attempt as bob from `source`: Ok once ReadyForQuery
/// arrives, else the ErrorResponse's message.
fn attempt_from(p: &PgProxy, source: &str, secret: &str) -> Result<(), String> {
    let mut s = raw_from(p, source);
    s.write_all(&startup(p, "bob@auto-db")).unwrap();
    let error = |body: &[u8]| String::from_utf8_lossy(body).into_owned();
    let (tag, body) = read_msg(&mut s);
    if tag == b'E' {
        return Err(error(&body));
    }
    let mut scram = ScramSha256::new(secret.as_bytes(), ChannelBinding::unsupported());
    let mut b = BytesMut::new();
    frontend::sasl_initial_response("SCRAM-SHA-256", scram.message(), &mut b).unwrap();
    s.write_all(&b).unwrap();
    let (_, body) = read_msg(&mut s);
    scram.update(&body[4..]).unwrap();
    b.clear();
    frontend::sasl_response(scram.message(), &mut b).unwrap();
    s.write_all(&b).unwrap();
    loop {
        let (tag, body) = read_msg(&mut s);
        match tag {
            b'E' => return Err(error(&body)),
            b'Z' => return Ok(()),
            _ => {}
        }
    }
}

/// Wrong secrets for bob from one source block that source, not bob: bob's
/// right secret still works from another source (and through psql over
/// TLS), so nobody can lock another engineer out.
#[test]
fn wrong_secrets_from_one_source_do_not_lock_the_user_out_elsewhere() {
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_gid, secret) = bob_grant(&p);
    let mut blocked = false;
    for _ in 0..8 {
        let e = attempt_from(&p, "127.0.0.2", "jgc_guess").unwrap_err();
        blocked |= e.contains("too many failed authentication attempts");
    }
    assert!(blocked, "the guessing source was never blocked");
    // The guessing source stays blocked, even with the right secret.
    let e = attempt_from(&p, "127.0.0.2", &secret).unwrap_err();
    assert!(e.contains("too many failed"), "{e}");
    // bob, from elsewhere, is not.
    attempt_from(&p, "127.0.0.1", &secret).expect("bob from 127.0.0.1");
    let o = p.psql("bob@auto-db", &secret, "SELECT 1");
    assert!(o.status.success(), "{:?}", text(&o));
}
