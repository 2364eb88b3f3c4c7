//! Hostile input on the admin API: oversized bodies, slow and unfinished
//! headers, garbage bytes, connection floods and malformed JSON. The daemon
//! must answer with an error or close the connection, never hang, never
//! panic (Daemon's drop checks the log), and stay healthy afterwards.

use crate::common;

use common::daemon::*;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// The hang bound: the server's header timeout is 10 s, its request timeout 30 s.
const HANG_BOUND: Duration = Duration::from_secs(30);

const TEN_MB: usize = 10 * 1024 * 1024;

/// What came back on a raw connection.
#[derive(Debug)]
struct Raw {
    /// Bytes received before EOF or a reset.
    bytes: Vec<u8>,
    /// The connection ended (EOF or reset) rather than the read timing out.
    closed: bool,
    elapsed: Duration,
}

impl Raw {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).to_string()
    }

    fn status(&self) -> Option<u16> {
        let t = self.text();
        let first = t.lines().next()?;
        if !first.starts_with("HTTP/1.") {
            return None;
        }
        first.split_whitespace().nth(1)?.parse().ok()
    }

    fn body(&self) -> String {
        self.text()
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

/// Reads until EOF, a reset or `bound`, keeping whatever arrived before.
fn read_all(s: &mut TcpStream, bound: Duration) -> Raw {
    let start = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = bound.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Raw {
                bytes,
                closed: false,
                elapsed: start.elapsed(),
            };
        }
        s.set_read_timeout(Some(left)).expect("set_read_timeout");
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Raw {
                    bytes,
                    closed: false,
                    elapsed: start.elapsed(),
                }
            }
            // Reset, broken pipe and the like: the server closed on us.
            Err(_) => break,
        }
    }
    Raw {
        bytes,
        closed: true,
        elapsed: start.elapsed(),
    }
}

/// Sends `head` and then whatever `body` writes, on a writer thread (the
/// server may answer and close before it has read everything), while this
/// thread reads the answer. Write errors are expected and ignored.
fn exchange(
    port: u16,
    head: Vec<u8>,
    body: impl FnOnce(&mut TcpStream) -> std::io::Result<()> + Send + 'static,
) -> Raw {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut w = s.try_clone().expect("clone stream");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&head).and_then(|_| body(&mut w));
        let _ = w.flush();
    });
    let raw = read_all(&mut s, HANG_BOUND);
    // Unblock a writer stuck on a full socket buffer before joining it.
    let _ = s.shutdown(Shutdown::Both);
    writer.join().expect("writer thread");
    raw
}

fn assert_healthy(d: &Daemon) {
    let r = d
        .get("/healthz", None)
        .expect("healthz after hostile input");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"), "{r:?}");
    let r = d.get("/v1/whoami", Some(ALICE)).expect("whoami");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "alice");
}

/// The documented error shape: {"error": {"code": "...", "message": "..."}}.
fn assert_error_shape(body: &str, status: u16) -> Value {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body}"));
    let err = v["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{status}: no error object: {body}"));
    assert!(
        err["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{status}: error.code must be a non-empty string: {body}"
    );
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{status}: error.message must be a non-empty string: {body}"
    );
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(1),
        "only the error object: {body}"
    );
    v
}

fn post_head(path: &str, token: &str, framing: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{framing}\r\n"
    )
    .into_bytes()
}

#[test]
fn a_ten_megabyte_body_with_content_length_gets_413_and_the_daemon_stays_healthy() {
    let d = Daemon::start();
    for path in ["/v1/requests", "/v1/users/bob/lock"] {
        let token = if path.contains("lock") { DAVE } else { ALICE };
        let head = post_head(path, token, &format!("Content-Length: {TEN_MB}\r\n"));
        let raw = exchange(d.admin_port, head, |w| {
            let chunk = vec![b' '; 64 * 1024];
            for _ in 0..TEN_MB / chunk.len() {
                w.write_all(&chunk)?;
            }
            Ok(())
        });
        assert!(raw.closed || raw.status().is_some(), "hung: {raw:?}");
        assert_eq!(raw.status(), Some(413), "{path}: {}", raw.text());
        let v = assert_error_shape(&raw.body(), 413);
        assert_eq!(v["error"]["code"], "payload_too_large");
    }
    assert_healthy(&d);
    // Nothing was created or locked by the oversized calls.
    let r = d.get("/v1/requests", Some(DAVE)).unwrap().json();
    assert_eq!(r["requests"], json!([]), "{r}");
    assert_eq!(
        d.get("/v1/whoami", Some(BOB)).unwrap().json()["locked"],
        false
    );
}

#[test]
fn a_ten_megabyte_chunked_body_without_content_length_gets_413_and_the_daemon_stays_healthy() {
    let d = Daemon::start();
    let head = post_head("/v1/requests", ALICE, "Transfer-Encoding: chunked\r\n");
    let raw = exchange(d.admin_port, head, |w| {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < TEN_MB {
            write!(w, "{:x}\r\n", chunk.len())?;
            w.write_all(&chunk)?;
            w.write_all(b"\r\n")?;
            sent += chunk.len();
        }
        w.write_all(b"0\r\n\r\n")
    });
    assert_eq!(raw.status(), Some(413), "{}", raw.text());
    let v = assert_error_shape(&raw.body(), 413);
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert_healthy(&d);
    let r = d.get("/v1/requests", Some(DAVE)).unwrap().json();
    assert_eq!(r["requests"], json!([]), "{r}");
}

#[test]
fn a_body_just_under_the_limit_is_still_read() {
    // The 64 KiB limit must not reject legitimate bodies near it: a padded
    // JSON body of 60 KiB is parsed (and rejected only for its content).
    let d = Daemon::start();
    let pad = " ".repeat(60 * 1024);
    let body = format!(r#"{{"target":"auto-web","reason":"x","duration":"1m"}}{pad}"#);
    let r = d.post("/v1/requests", Some(BOB), &body).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn headers_that_never_finish_are_cut_off_by_the_header_timeout() {
    let d = Daemon::start();
    let mut s = TcpStream::connect(("127.0.0.1", d.admin_port)).unwrap();
    s.write_all(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let raw = read_all(&mut s, HANG_BOUND);
    assert!(
        raw.closed,
        "the server kept an unfinished request open for {:?}",
        raw.elapsed
    );
    // Either a bare close or an error status; never a 200 for half a request.
    if let Some(st) = raw.status() {
        assert!(st >= 400, "{}", raw.text());
    }
    assert_healthy(&d);
}

#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let d = Daemon::start();
    let mut s = TcpStream::connect(("127.0.0.1", d.admin_port)).unwrap();
    let raw = read_all(&mut s, HANG_BOUND);
    assert!(
        raw.closed,
        "an idle connection held a slot for {:?}",
        raw.elapsed
    );
    assert_healthy(&d);
}

#[test]
fn headers_dribbled_a_byte_at_a_time_are_cut_off() {
    // Slowloris: each byte arrives well within any per-read timeout, but the
    // head as a whole never completes in time.
    let d = Daemon::start();
    let mut s = TcpStream::connect(("127.0.0.1", d.admin_port)).unwrap();
    let mut w = s.try_clone().unwrap();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let head = b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
        let mut tail = std::iter::repeat(b'a');
        for b in head.into_iter().chain(&mut tail) {
            if w.write_all(&[b]).is_err() || start.elapsed() > HANG_BOUND {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let raw = read_all(&mut s, HANG_BOUND + Duration::from_secs(5));
    let _ = s.shutdown(Shutdown::Both);
    writer.join().unwrap();
    assert!(
        raw.closed && raw.elapsed < HANG_BOUND,
        "a dribbling client kept its connection for {:?}",
        raw.elapsed
    );
    assert_healthy(&d);
}

#[test]
fn a_kept_alive_connection_that_goes_idle_is_eventually_closed() {
    let d = Daemon::start();
    let mut s = TcpStream::connect(("127.0.0.1", d.admin_port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Read the first response (Content-Length framed), then go silent.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    s.set_read_timeout(Some(HANG_BOUND)).unwrap();
    while !String::from_utf8_lossy(&got).ends_with("ok") {
        let n = s.read(&mut buf).expect("first response");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    let raw = read_all(&mut s, HANG_BOUND + Duration::from_secs(15));
    assert!(
        raw.closed,
        "an idle keep-alive connection held a slot for {:?}",
        raw.elapsed
    );
}

#[test]
fn oversized_headers_are_refused() {
    let d = Daemon::start();
    let big = "a".repeat(256 * 1024);
    let many: String = (0..2000).map(|i| format!("X-H{i}: v\r\n")).collect();
    for head in [
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
        format!("GET /{big} HTTP/1.1\r\nHost: x\r\n\r\n"),
    ] {
        let raw = exchange(d.admin_port, head.into_bytes(), |_| Ok(()));
        assert!(raw.closed, "{raw:?}");
        if let Some(st) = raw.status() {
            assert!(
                st == 431 || st == 400 || st == 413 || st == 414,
                "unexpected status {st}"
            );
        }
    }
    assert_healthy(&d);
}

#[test]
fn a_body_that_never_finishes_is_cut_off() {
    // Headers complete, body promised but never sent in full: the request
    // timeout (30 s) must end it with an error or a close.
    let d = Daemon::start();
    let mut s = TcpStream::connect(("127.0.0.1", d.admin_port)).unwrap();
    let mut head = post_head(
        "/v1/requests",
        ALICE,
        "Content-Length: 1000\r\nConnection: close\r\n",
    );
    head.extend_from_slice(br#"{"target":"#);
    s.write_all(&head).unwrap();
    let raw = read_all(&mut s, HANG_BOUND + Duration::from_secs(15));
    assert!(
        raw.closed || raw.status().is_some(),
        "a stalled body held the connection for {:?}",
        raw.elapsed
    );
    if let Some(st) = raw.status() {
        assert!(st >= 400, "{}", raw.text());
        assert_error_shape(&raw.body(), st);
    }
    assert_healthy(&d);
    let r = d.get("/v1/requests", Some(DAVE)).unwrap().json();
    assert_eq!(r["requests"], json!([]), "{r}");
}

#[test]
fn garbage_bytes_get_400_or_a_close_and_no_panic() {
    use rand::{RngCore, SeedableRng};
    let d = Daemon::start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x006a_6974_6761_7465);
    for size in [1usize, 7, 64, 1024, 16 * 1024, 200 * 1024] {
        let mut junk = vec![0u8; size];
        rng.fill_bytes(&mut junk);
        let raw = exchange(d.admin_port, junk, |_| Ok(()));
        assert!(raw.closed, "{size} garbage bytes: connection left hanging");
        match raw.status() {
            None => assert!(
                raw.bytes.is_empty(),
                "{size} garbage bytes: neither a status line nor a close: {}",
                raw.text()
            ),
            Some(st) => assert!(
                (400..500).contains(&st),
                "{size} garbage bytes got {st}: {}",
                raw.text()
            ),
        }
    }
    // A garbage request line after a valid prefix, and binary inside headers.
    for junk in [
        b"GET /healthz HTTP/9.9\r\n\r\n".to_vec(),
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: \xff\xfe\x00\r\nX: \x01\r\n\r\n".to_vec(),
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello".to_vec(),
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
    ] {
        let raw = exchange(d.admin_port, junk.clone(), |_| Ok(()));
        assert!(
            raw.closed || raw.status().is_some(),
            "{:?}: no answer and no close",
            String::from_utf8_lossy(&junk)
        );
        if let Some(st) = raw.status() {
            assert!(
                (400..500).contains(&st),
                "{:?} got {st}",
                String::from_utf8_lossy(&junk)
            );
        }
    }
    assert_healthy(&d);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

/// The soft and hard open-file limits of this process.
fn nofile_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|n| n.parse().unwrap_or(u64::MAX))
        .collect();
    (nums[0], nums[1])
}

/// Raises this process's soft open-file limit (inherited by the daemon we
/// spawn) so that a 1,000-connection test is not limited by a 1,024 default:
/// this process and the daemon each hold a descriptor per connection.
/// Returns false (the caller skips through the guard) when the hard limit
/// cannot allow it; a failing prlimit fails the test.
fn raise_nofile_limit(need: u64) -> bool {
    let (soft, hard) = nofile_limits();
    if hard < need {
        return false;
    }
    let want = hard.min(8192).max(need);
    if soft < want {
        let st = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={want}:"),
            ])
            .status()
            .expect("run prlimit");
        assert!(st.success(), "prlimit --nofile={want}: failed: {st}");
    }
    let (soft, _) = nofile_limits();
    assert!(
        soft >= need,
        "open-file limit {soft} after prlimit, need {need}"
    );
    true
}

#[test]
fn a_thousand_concurrent_connections_are_all_served() {
    if !raise_nofile_limit(2500) {
        common::e2e_skip("the hard open-file limit is under 2,500");
        return;
    }
    let d = Daemon::start();
    let pid = d.child.as_ref().expect("running").id();
    let port = d.admin_port;
    let n = 1000;

    #[derive(Debug)]
    enum Outcome {
        Ok,
        Refused(String),
        Bad(String),
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (outcomes, peak_rss) = rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n + 1));
        let mut tasks = Vec::new();
        for _ in 0..n {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let conn = tokio::time::timeout(
                    HANG_BOUND,
                    tokio::net::TcpStream::connect(("127.0.0.1", port)),
                )
                .await;
                // Everyone connects first, so all the connections are open at once.
                barrier.wait().await;
                let mut s = match conn {
                    Err(_) => return Outcome::Bad("connect hung".into()),
                    Ok(Err(e)) => return Outcome::Refused(format!("connect: {e}")),
                    Ok(Ok(s)) => s,
                };
                let io = async {
                    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .await?;
                    let mut buf = Vec::new();
                    s.read_to_end(&mut buf).await?;
                    Ok::<_, std::io::Error>(buf)
                };
                match tokio::time::timeout(HANG_BOUND, io).await {
                    Err(_) => Outcome::Bad("request hung".into()),
                    Ok(Err(e)) => Outcome::Refused(format!("io: {e}")),
                    Ok(Ok(buf)) => {
                        let t = String::from_utf8_lossy(&buf);
                        if t.starts_with("HTTP/1.1 200") && t.ends_with("\r\n\r\nok") {
                            Outcome::Ok
                        } else if buf.is_empty() {
                            Outcome::Refused("closed without an answer".into())
                        } else if t.starts_with("HTTP/1.1 503") {
                            Outcome::Refused("503".into())
                        } else {
                            Outcome::Bad(format!("unexpected answer: {t}"))
                        }
                    }
                }
            }));
        }
        // Measure while every connection is open.
        barrier.wait().await;
        let mut peak = rss_kib(pid);
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.expect("task"));
            peak = peak.max(rss_kib(pid));
        }
        (outcomes, peak)
    });

    let ok = outcomes.iter().filter(|o| matches!(o, Outcome::Ok)).count();
    let refused: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Refused(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    let bad: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Bad(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    eprintln!(
        "1000 connections: {ok} ok, {} refused, {} bad; daemon peak RSS {} KiB",
        refused.len(),
        bad.len(),
        peak_rss
    );
    assert!(
        bad.is_empty(),
        "hung or wrong answers: {:?}",
        &bad[..bad.len().min(10)]
    );
    // The admin listener serves up to MAX_CONNECTIONS (2,048) at once and
    // the open-file limits allow them all: every one is served.
    assert_eq!(
        ok,
        n,
        "{} of {n} connections were refused: {:?}",
        refused.len(),
        &refused[..refused.len().min(10)]
    );
    assert!(
        peak_rss < 200 * 1024,
        "daemon RSS reached {peak_rss} KiB under 1000 connections"
    );
    assert_healthy(&d);
    let after = rss_kib(pid);
    assert!(after < 200 * 1024, "daemon RSS {after} KiB afterwards");
}

/// A pending request, an active grant, and the ids to aim hostile bodies at.
struct Fixture {
    request: String,
    grant: String,
}

fn fixture(d: &Daemon) -> Fixture {
    let r = d
        .post(
            "/v1/requests",
            Some(ALICE),
            r#"{"target":"cache","duration":"10m","reason":"INC-1"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let request = r.json()["id"].as_str().unwrap().to_string();
    let r = d
        .post(
            "/v1/requests",
            Some(BOB),
            r#"{"target":"auto-web","duration":"10m","reason":"INC-2"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let grant = r.json()["grant"]["id"].as_str().unwrap().to_string();
    Fixture { request, grant }
}

fn hostile_bodies(field: &str) -> Vec<(String, &'static str)> {
    vec![
        ("{not json".into(), "malformed"),
        (format!(r#"{{"{field}": "x""#), "truncated"),
        ("\"text\"".into(), "string instead of object"),
        ("null".into(), "null instead of object"),
        ("42".into(), "number instead of object"),
        (format!(r#"{{"{field}": 5}}"#), "number for a string field"),
        (
            format!(r#"{{"{field}": ["a"]}}"#),
            "array for a string field",
        ),
        (
            format!(r#"{{"{field}": {{"a": 1}}}}"#),
            "object for a string field",
        ),
        (format!(r#"{{"{field}": true}}"#), "bool for a string field"),
        (
            format!(r#"{{"{field}": "x", "extra": 1}}"#),
            "unknown field",
        ),
        (r#"{"approve": true}"#.into(), "only an unknown field"),
        (
            format!(r#"{{"{field}": "x"}} trailing"#),
            "trailing garbage",
        ),
        (
            format!(r#"{{"{field}": "x"}}{{"{field}": "y"}}"#),
            "two objects",
        ),
        (
            format!(r#"{{"{field}": "x", "{field}": "y"}}"#),
            "duplicate field",
        ),
        (format!("{{\"{field}\": \"\\ud800\"}}"), "lone surrogate"),
    ]
}

fn post_bytes(d: &Daemon, path: &str, token: &str, body: &[u8]) -> Raw {
    let mut head = post_head(
        path,
        token,
        &format!("Content-Length: {}\r\nConnection: close\r\n", body.len()),
    );
    head.extend_from_slice(body);
    exchange(d.admin_port, head, |_| Ok(()))
}

#[test]
fn malformed_json_wrong_types_and_unknown_fields_get_400_with_the_error_body() {
    let d = Daemon::start();
    let f = fixture(&d);
    let routes: Vec<(String, &str, &str)> = vec![
        (
            format!("/v1/requests/{}/approve", f.request),
            CAROL,
            "comment",
        ),
        (format!("/v1/requests/{}/deny", f.request), CAROL, "reason"),
        (format!("/v1/grants/{}/revoke", f.grant), DAVE, "reason"),
        ("/v1/users/bob/lock".to_string(), DAVE, "reason"),
        ("/v1/requests".to_string(), ALICE, "target"),
    ];
    for (path, token, field) in &routes {
        for (body, what) in hostile_bodies(field) {
            let r = d.post(path, Some(token), &body).unwrap();
            assert_eq!(r.status, 400, "{path} with {what} ({body}): {}", r.body);
            let v = assert_error_shape(&r.body, 400);
            assert_eq!(
                v["error"]["code"], "bad_request",
                "{path} {what}: {}",
                r.body
            );
        }
        // Invalid UTF-8 is malformed input too, not a server error.
        let raw = post_bytes(&d, path, token, b"{\"reason\": \"\xff\xfe\"}");
        assert_eq!(
            raw.status(),
            Some(400),
            "{path} invalid UTF-8: {}",
            raw.text()
        );
        assert_error_shape(&raw.body(), 400);
        // A Content-Length that is not a number.
        let head = post_head(path, token, "Content-Length: lots\r\nConnection: close\r\n");
        let raw = exchange(d.admin_port, head, |_| Ok(()));
        assert!(raw.closed);
        if let Some(st) = raw.status() {
            assert_eq!(st, 400, "{path} bad Content-Length: {}", raw.text());
        }
    }

    // None of it changed any state.
    let r = d
        .get(&format!("/v1/requests/{}", f.request), Some(DAVE))
        .unwrap()
        .json();
    assert_eq!(r["state"], "pending", "{r}");
    assert_eq!(r["approvals"], json!([]), "{r}");
    let g = d
        .get(&format!("/v1/grants/{}", f.grant), Some(DAVE))
        .unwrap()
        .json();
    assert_eq!(g["state"], "active", "{g}");
    assert_eq!(
        d.get("/v1/whoami", Some(BOB)).unwrap().json()["locked"],
        false
    );
    let all = d.get("/v1/requests", Some(DAVE)).unwrap().json();
    assert_eq!(all["requests"].as_array().unwrap().len(), 2, "{all}");

    // And the well-formed calls still work afterwards.
    let r = d
        .post(
            &format!("/v1/requests/{}/approve", f.request),
            Some(CAROL),
            r#"{"comment":"ok"}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_healthy(&d);
}

#[test]
fn bodies_on_routes_that_take_none_must_be_empty_objects() {
    let d = Daemon::start();
    let f = fixture(&d);
    for (path, token) in [
        (format!("/v1/requests/{}/cancel", f.request), ALICE),
        (format!("/v1/grants/{}/secret", f.grant), BOB),
        ("/v1/users/bob/unlock".to_string(), DAVE),
    ] {
        for body in [r#"{"x":1}"#, "{oops", "[1]"] {
            let r = d.post(&path, Some(token), body).unwrap();
            assert_eq!(r.status, 400, "{path} with {body}: {}", r.body);
            assert_error_shape(&r.body, 400);
        }
    }
    let r = d
        .get(&format!("/v1/requests/{}", f.request), Some(DAVE))
        .unwrap()
        .json();
    assert_eq!(r["state"], "pending", "{r}");
}

#[test]
fn hostile_paths_and_query_strings_get_clean_errors() {
    let d = Daemon::start();
    let long = "a".repeat(8000);
    for (path, want) in [
        ("/v1/requests?state=%ZZ", 400),
        ("/v1/requests?state=%", 400),
        ("/v1/requests?state=%ff", 400),
        ("/v1/requests?bogus=1", 400),
        ("/v1/grants?limit=-1", 400),
        ("/v1/audit?after=-5", 400),
        ("/v1/audit?after=abc", 400),
        ("/v1/requests/..%2F..%2Fetc%2Fpasswd", 404),
        ("/v1/grants/%00", 404),
        ("/v1//requests", 404),
        ("/v1/requests/a/b/c/d", 404),
        ("/nope", 404),
    ] {
        let r = d.get(path, Some(DAVE)).unwrap();
        assert_eq!(r.status, want, "{path}: {}", r.body);
        assert_error_shape(&r.body, want);
    }
    let r = d.get(&format!("/v1/grants/{long}"), Some(DAVE)).unwrap();
    assert_eq!(r.status, 404, "{}", r.body);
    assert_error_shape(&r.body, 404);
    // A huge or binary bearer token is just unauthorized.
    for tok in ["x".repeat(10_000), "\u{7f}\u{1}".to_string()] {
        let r = d.get("/v1/whoami", Some(&tok)).unwrap();
        assert!(
            r.status == 401 || r.status == 400 || r.status == 431,
            "{}",
            r.body
        );
    }
    assert_healthy(&d);
}

#[test]
fn json_arrays_are_not_accepted_in_place_of_objects() {
    // serde accepts a struct written as a positional array, e.g.
    // ["cache", "10m", "x"], unless told otherwise; the API must not act on it.
    let d = Daemon::start();
    let f = fixture(&d);
    let calls: Vec<(String, &str, &str)> = vec![
        ("/v1/requests".into(), ALICE, r#"["cache", "10m", "array"]"#),
        (
            format!("/v1/requests/{}/approve", f.request),
            CAROL,
            r#"["ok"]"#,
        ),
        (format!("/v1/requests/{}/approve", f.request), ERIN, "[]"),
        (
            format!("/v1/requests/{}/deny", f.request),
            CAROL,
            r#"["no"]"#,
        ),
        (format!("/v1/requests/{}/cancel", f.request), ALICE, "[]"),
        (format!("/v1/grants/{}/revoke", f.grant), DAVE, r#"["r"]"#),
        (format!("/v1/grants/{}/revoke", f.grant), DAVE, "[]"),
        ("/v1/users/bob/lock".into(), DAVE, r#"["lock"]"#),
    ];
    let mut accepted = Vec::new();
    for (path, token, body) in &calls {
        let r = d.post(path, Some(token), body).unwrap();
        if r.status != 400 {
            accepted.push(format!("POST {path} {body} -> {}", r.status));
        } else {
            assert_error_shape(&r.body, 400);
        }
    }
    let req = d
        .get(&format!("/v1/requests/{}", f.request), Some(DAVE))
        .unwrap()
        .json();
    let g = d
        .get(&format!("/v1/grants/{}", f.grant), Some(DAVE))
        .unwrap()
        .json();
    let all = d.get("/v1/requests", Some(DAVE)).unwrap().json();
    assert!(
        accepted.is_empty(),
        "array bodies were accepted (request now {}, grant now {}, {} requests, bob locked: {}):\n{}",
        req["state"],
        g["state"],
        all["requests"].as_array().map(|a| a.len()).unwrap_or(0),
        d.get("/v1/whoami", Some(BOB)).unwrap().json()["locked"],
        accepted.join("\n")
    );
}
