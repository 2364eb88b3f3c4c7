//! Hostile input on the TCP tunnel listener: every bad connection gets a
//! typed rejection or a bounded timeout, moves
//! jitgate_connections_rejected_total, and leaves the proxy serving.

use crate::common;

use common::daemon::*;
use common::tunnel::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PROTOCOL_ERRORS: &str =
    r#"jitgate_connections_rejected_total{kind="tcp",reason="protocol_error"}"#;

/// The handshake limit is 10 s; anything closed well within 30 s passed it.
fn closed_within_the_handshake_limit(r: &mut impl Read) -> Duration {
    let t0 = Instant::now();
    assert!(closed_by_peer(r), "the proxy never closed the connection");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(25), "took {took:?}");
    took
}

fn raw_tcp(t: &Tunnel) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn still_serves(t: &Tunnel) {
    let (_g, secret) = t.grant(BOB, "auto-echo", "5m");
    let (mut s, r) = t.raw("auto-echo", &secret);
    assert_eq!(r.status, OK, "{r:?}");
    echo(&mut s, b"still here");
}

#[test]
fn garbage_instead_of_tls_is_rejected() {
    let t = Tunnel::start();
    let mut s = raw_tcp(&t);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    closed_within_the_handshake_limit(&mut s);
    wait_for("the rejection to be counted", || {
        t.metric(PROTOCOL_ERRORS) == 1.0
    });
    still_serves(&t);
}

#[test]
fn bad_handshakes_inside_tls_get_a_protocol_error_reply() {
    let t = Tunnel::start();
    let long_target = "a".repeat(200);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", b"HTTP\x01\x01\x00\x00\x00".to_vec()),
        ("unknown version", b"JITG\x07\x01\x00\x00\x00".to_vec()),
        ("unknown kind", b"JITG\x01\x09\x00\x00\x00".to_vec()),
        ("oversized target", hello(1, &long_target, "s", "")),
        ("invalid target name", hello(1, "../etc", "s", "")),
        ("non-UTF-8 secret", {
            let mut v = b"JITG\x01\x01\x01a\x02".to_vec();
            v.extend_from_slice(&[0xff, 0xfe, 0]);
            v
        }),
    ];
    let n = cases.len();
    for (what, bytes) in cases {
        let mut tls = t.tls();
        tls.write_all(&bytes).unwrap();
        let r = read_reply(&mut tls);
        assert_eq!(r.status, PROTOCOL_ERROR, "{what}: {r:?}");
        assert!(!r.message.is_empty(), "{what}");
        assert!(closed_by_peer(&mut tls), "{what}: left open");
    }
    // An oversized secret length byte is refused without reading 255 bytes.
    let mut tls = t.tls();
    tls.write_all(b"JITG\x01\x01\x01a\xff").unwrap();
    let r = read_reply(&mut tls);
    assert_eq!(r.status, PROTOCOL_ERROR, "{r:?}");
    assert!(r.message.contains("secret too long"), "{r:?}");
    assert_eq!(t.metric(PROTOCOL_ERRORS), (n + 1) as f64);
    still_serves(&t);
}

#[test]
fn silent_and_slow_clients_are_cut_off_by_the_handshake_timeout() {
    let t = Tunnel::start();
    // TCP only: no ClientHello ever.
    let mut silent = raw_tcp(&t);
    // TLS established, then no handshake.
    let mut mute_tls = t.tls();
    // A handshake dribbled one byte a second: 40 bytes would take 40 s.
    let (_g, secret) = t.grant(BOB, "auto-echo", "5m");
    let mut slow = t.tls();
    let bytes = hello(1, "auto-echo", &secret, "");
    let dribble = std::thread::spawn(move || {
        for b in bytes {
            if slow.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        // Sent in full: cut off only if the proxy refuses to answer.
        let mut b = [0u8; 1];
        !matches!(slow.read(&mut b), Ok(1))
    });
    closed_within_the_handshake_limit(&mut silent);
    closed_within_the_handshake_limit(&mut mute_tls);
    assert!(
        dribble.join().unwrap(),
        "the slow handshake was allowed to finish"
    );
    wait_for("three timeouts counted", || {
        t.metric(PROTOCOL_ERRORS) == 3.0
    });
    assert_eq!(t.live_sessions(), 0);
    still_serves(&t);
}

fn rss_peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_five_thousand_bad_connections_is_shed_with_bounded_memory() {
    const THREADS: usize = 25;
    const EACH: usize = 200;
    let t = Tunnel::start();
    let pid = t.d.child.as_ref().unwrap().id();
    let port = t.port;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                // Open all, then write garbage on all, so each thread holds
                // its 200 connections at once.
                let mut held: Vec<TcpStream> = (0..EACH)
                    .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
                    .collect();
                let mut closed = 0;
                for s in held.iter_mut() {
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    let _ = s.write_all(&[0x42; 64]);
                }
                for s in held.iter_mut() {
                    if closed_by_peer(s) {
                        closed += 1;
                    }
                }
                closed
            })
        })
        .collect();
    let closed: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(closed, THREADS * EACH, "every flood connection is closed");
    wait_for("every rejection counted", || {
        t.metric(PROTOCOL_ERRORS) == (THREADS * EACH) as f64
    });
    let peak = rss_peak_kib(pid);
    eprintln!("daemon peak RSS during the flood: {peak} KiB");
    assert!(
        peak < 256 * 1024,
        "daemon peak RSS {peak} KiB during the flood"
    );
    still_serves(&t);
}
