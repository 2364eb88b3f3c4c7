//! The statement recording follows what the server did, not what the
//! client asked (docs/recording.md): a refused re-Parse of a name leaves the
//! statement the server keeps, a Close frees the name, and a long statement
//! is recorded by its head, its tail and its digest. Raw protocol messages
//! against the real PostgreSQL through the proxy.

use crate::common;

use common::daemon::*;
use common::pgproxy::*;
use common::pgraw::{error_fields, read_msg, RawSession};
use common::recording::*;
use common::tunnel::wait_for;
use common::wait::HANG;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;

pub(crate) fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(4 + body.len() as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

pub(crate) fn parse(name: &str, text: &str) -> Vec<u8> {
    msg(b'P', format!("{name}\0{text}\0\0\0").as_bytes())
}

/// Bind of `stmt` to the unnamed portal, no parameters, text results.
fn bind(stmt: &str) -> Vec<u8> {
    msg(b'B', format!("\0{stmt}\0\0\0\0\0\0\0").as_bytes())
}

fn execute() -> Vec<u8> {
    msg(b'E', b"\0\0\0\0\0")
}

fn close_statement(name: &str) -> Vec<u8> {
    msg(b'C', format!("S{name}\0").as_bytes())
}

pub(crate) fn sync() -> Vec<u8> {
    msg(b'S', b"")
}

/// Sends `msgs` at once (pipelined) and reads the answers up to
/// ReadyForQuery: (tags in order, first column of each DataRow, SQLSTATEs).
pub(crate) fn batch(s: &mut RawSession, msgs: &[Vec<u8>]) -> (String, Vec<String>, Vec<String>) {
    s.s.write_all(&msgs.concat()).unwrap();
    let (mut tags, mut rows, mut codes) = (String::new(), Vec::new(), Vec::new());
    loop {
        let (tag, body) = read_msg(&mut s.s).unwrap();
        tags.push(tag as char);
        match tag {
            b'D' => {
                let len = i32::from_be_bytes(body[2..6].try_into().unwrap()) as usize;
                rows.push(String::from_utf8_lossy(&body[6..6 + len]).into_owned());
            }
            b'E' => codes.extend(
                error_fields(&body)
                    .into_iter()
                    .filter(|(f, _)| *f == 'C')
                    .map(|(_, v)| v),
            ),
            b'Z' => return (tags, rows, codes),
            _ => {}
        }
    }
}

/// The statement lines of the one recorded session of `p`, once it ended.
pub(crate) fn recorded(p: &PgProxy) -> Vec<Value> {
    let mut events = Vec::new();
    wait_for("the session.ended event", || {
        events = ended_events(&p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body);
        !events.is_empty()
    });
    let sid = events[0]["subject"].as_str().unwrap();
    let path = dir(&p.d.dir).join(format!("{sid}.ndjson"));
    assert_eq!(detail(&events[0])["recording_sha256"], sha256_hex(&path));
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A proxy recording statements (`on_failure = "refuse"`) and bob's raw
/// session through it; None when PostgreSQL is not installed.
pub(crate) fn recording_session() -> Option<(PgProxy, RawSession)> {
    let p = PgProxy::start_more(true, &section("off", "refuse"))?;
    let (_gid, secret) = bob_grant(&p);
    let s = RawSession::login(&p, "bob@auto-db", &secret, &[]);
    Some((p, s))
}

pub(crate) fn terminate(mut s: RawSession) {
    let _ = s.s.write_all(&msg(b'X', b""));
    drop(s);
}

/// A re-Parse of an existing name is refused by the server (42P05): the
/// server goes on running the first statement, and the recording shows
/// that one; after a Close the name takes the new text.
#[test]
fn names_are_recorded_as_the_server_confirmed_them() {
    let Some((p, mut s)) = recording_session() else {
        return;
    };
    assert!(s
        .query("CREATE TABLE names_t (a int); INSERT INTO names_t VALUES (41)")
        .is_ok());
    let (tags, _, _) = batch(
        &mut s,
        &[parse("s1", "SELECT count(*) FROM names_t"), sync()],
    );
    assert_eq!(tags, "1Z");
    // Refused, and the rest of the batch skipped by the server.
    let (_, _, codes) = batch(
        &mut s,
        &[
            parse("s1", "DELETE FROM names_t"),
            bind("s1"),
            execute(),
            sync(),
        ],
    );
    assert_eq!(codes, ["42P05"]);
    let (tags, rows, _) = batch(&mut s, &[bind("s1"), execute(), sync()]);
    assert_eq!((tags.as_str(), rows), ("2DCZ", vec!["1".to_string()]));
    let (tags, rows, _) = batch(
        &mut s,
        &[
            close_statement("s1"),
            parse("s1", "SELECT a + 1 FROM names_t"),
            bind("s1"),
            execute(),
            sync(),
        ],
    );
    assert_eq!((tags.as_str(), rows), ("312DCZ", vec!["42".to_string()]));
    // A failed Parse of the unnamed statement leaves none: the server
    // refuses the Bind, and the recording does not name the old text.
    let (tags, _, _) = batch(&mut s, &[parse("", "SELECT 7"), sync()]);
    assert_eq!(tags, "1Z");
    let (_, _, codes) = batch(&mut s, &[parse("", "SELEC 8"), sync()]);
    assert_eq!(codes, ["42601"]);
    let (_, _, codes) = batch(&mut s, &[bind(""), execute(), sync()]);
    assert_eq!(codes, ["26000"]);
    terminate(s);

    let lines = recorded(&p);
    let shown: Vec<(&str, &Value)> = lines
        .iter()
        .map(|l| (l["statement"].as_str().unwrap_or(""), &l["sqlstate"]))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "CREATE TABLE names_t (a int); INSERT INTO names_t VALUES (41)",
                &Value::Null
            ),
            ("DELETE FROM names_t", &Value::from("42P05")),
            ("SELECT count(*) FROM names_t", &Value::Null),
            ("SELECT a + 1 FROM names_t", &Value::Null),
            ("SELEC 8", &Value::from("42601")),
            (
                "[jitgate: prepared statement \"\" not known to the recorder]",
                &Value::from("26000")
            ),
        ],
        "{lines:?}"
    );
}

/// A statement padded past what is kept, hiding a DROP at its end: the
/// recording keeps its head and its tail (with the DROP), says how many
/// bytes it left out, and gives the SHA-256 of the whole text.
#[test]
fn a_long_statement_is_recorded_by_head_tail_and_digest() {
    let Some((p, mut s)) = recording_session() else {
        return;
    };
    assert!(s.query("CREATE TABLE long_t (a int)").is_ok());
    let sql = format!(
        "SELECT 1 /* {} */; DROP TABLE long_t",
        "padding ".repeat(40_000)
    );
    assert!(s.query(&sql).is_ok());
    assert_eq!(
        s.query("SELECT to_regclass('long_t') IS NULL"),
        Ok(vec!["t".to_string()])
    );
    terminate(s);

    let lines = recorded(&p);
    let long = lines
        .iter()
        .find(|l| {
            l["statement"]
                .as_str()
                .unwrap_or("")
                .starts_with("SELECT 1 /* padding")
        })
        .unwrap_or_else(|| panic!("{lines:?}"));
    let text = long["statement"].as_str().unwrap();
    assert!(
        text.ends_with("padding  */; DROP TABLE long_t"),
        "{}",
        &text[text.len() - 80..]
    );
    assert!(text.contains(" bytes left out]…"));
    assert!(text.len() < 70_000, "{}", text.len());
    assert_eq!(
        long["statement_sha256"],
        hex::encode(Sha256::digest(sql.as_bytes()))
    );
    // A short statement has no digest.
    assert!(lines
        .iter()
        .filter(|l| l["statement"] == "CREATE TABLE long_t (a int)")
        .all(|l| l.get("statement_sha256").is_none()));
}

/// A real driver pipelining Parse, Bind, Describe, Execute and Sync, and a
/// named portal read in parts inside a transaction: every Execute is
/// recorded with its own statement.
#[test]
fn a_pipelining_driver_is_recorded_statement_by_statement() {
    let Some(p) = PgProxy::start_more(false, &section("off", "refuse")) else {
        return;
    };
    let (_gid, secret) = bob_grant(&p);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut client, conn) = p.tokio_postgres("bob@auto-db", &secret).await.unwrap();
        let driver = tokio::spawn(conn);
        let a = client.prepare("SELECT $1::int + 1").await.unwrap();
        let b = client.prepare("SELECT $1::int * 2").await.unwrap();
        let queries = (0..40i32).map(|i| {
            let (client, st) = (&client, if i % 2 == 0 { &a } else { &b });
            async move { client.query_one(st, &[&i]).await.unwrap().get::<_, i32>(0) }
        });
        let got = futures_util::future::join_all(queries).await;
        let want: Vec<i32> = (0..40)
            .map(|i| if i % 2 == 0 { i + 1 } else { i * 2 })
            .collect();
        assert_eq!(got, want);
        let tx = client.transaction().await.unwrap();
        let st = tx.prepare("SELECT generate_series(1, 5)").await.unwrap();
        let portal = tx.bind(&st, &[]).await.unwrap();
        assert_eq!(tx.query_portal(&portal, 3).await.unwrap().len(), 3);
        assert_eq!(tx.query_portal(&portal, 3).await.unwrap().len(), 2);
        tx.commit().await.unwrap();
        drop(client);
        let _ = driver.await;
    });
    let lines = recorded(&p);
    let count = |text: &str| lines.iter().filter(|l| l["statement"] == text).count();
    assert_eq!(count("SELECT $1::int + 1"), 20, "{lines:?}");
    assert_eq!(count("SELECT $1::int * 2"), 20, "{lines:?}");
    assert_eq!(count("SELECT generate_series(1, 5)"), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| l["sqlstate"].is_null()
            && !l["statement"].as_str().unwrap_or("").contains("not known")),
        "{lines:?}"
    );
}

/// A client that sends more statements than the recorder follows without
/// reading its answers: a marker line says statements were not recorded,
/// and under `on_failure = "refuse"` the session is ended with a farewell
/// that says why.
#[test]
fn too_many_statements_in_flight_end_the_session_under_refuse() {
    let Some((p, mut s)) = recording_session() else {
        return;
    };
    // Each answer is 100 kB, so the unread answers stall the server long
    // before it reads the 6000th query; the proxy reads them all.
    let q = msg(b'Q', b"SELECT repeat('x', 100000)\0");
    s.s.write_all(&q.repeat(6000)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = std::time::Instant::now() + HANG;
    while std::time::Instant::now() < deadline {
        match std::io::Read::read(&mut s.s, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let tail = String::from_utf8_lossy(&got[got.len().saturating_sub(4096)..]).into_owned();
    assert!(tail.contains("could not be recorded"), "{tail}");
    let mut events = Vec::new();
    wait_for("the session.ended event", || {
        events = ended_events(&p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body);
        !events.is_empty()
    });
    assert_eq!(detail(&events[0])["reason"], "error", "{}", events[0]);
    let sid = events[0]["subject"].as_str().unwrap();
    let path = dir(&p.d.dir).join(format!("{sid}.ndjson"));
    // Sealed as usual: the digest covers the marker line.
    assert_eq!(detail(&events[0])["recording_sha256"], sha256_hex(&path));
    let text = std::fs::read_to_string(&path).unwrap();
    let marker: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l.get("marker").is_some())
        .unwrap_or_else(|| panic!("no marker line in {path:?}"));
    assert!(marker["not_recorded"].as_u64().unwrap() > 1, "{marker}");
}

/// The same under `on_failure = "continue"`: the session runs on, the
/// failure is audited as `recording.failed`, and the marker is recorded.
#[test]
fn too_many_statements_in_flight_are_audited_under_continue() {
    let Some(p) = PgProxy::start_more(true, &section("off", "continue")) else {
        return;
    };
    let (_gid, secret) = bob_grant(&p);
    let mut s = RawSession::login(&p, "bob@auto-db", &secret, &[]);
    // 40 MB of unread answers stall the server; the small queries after
    // them are all read by the proxy meanwhile.
    let big = msg(b'Q', b"SELECT repeat('x', 100000)\0").repeat(400);
    let small = msg(b'Q', b"SELECT 1\0").repeat(5000);
    s.s.write_all(&[big, small].concat()).unwrap();
    let mut ready = 0;
    while ready < 5400 {
        let (tag, body) = read_msg(&mut s.s).unwrap();
        assert_ne!(tag, b'E', "{:?}", error_fields(&body));
        ready += usize::from(tag == b'Z');
    }
    assert_eq!(
        s.query("SELECT 'still here'"),
        Ok(vec!["still here".to_string()])
    );
    terminate(s);
    let audit = || p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
    wait_for("recording.failed", || {
        audit().contains("\"recording.failed\"")
    });
    assert!(
        audit().contains("statements were not recorded"),
        "{}",
        audit()
    );
    let mut events = Vec::new();
    wait_for("the session.ended event", || {
        events = ended_events(&audit());
        !events.is_empty()
    });
    // Ended by the client's Terminate, not by the failure: the proxy may
    // see the client's close or the server's (it got the Terminate) first.
    let reason = detail(&events[0])["reason"].clone();
    assert!(
        reason == "client_closed" || reason == "upstream_closed",
        "{}",
        events[0]
    );
    let sid = events[0]["subject"].as_str().unwrap();
    let text = std::fs::read_to_string(dir(&p.d.dir).join(format!("{sid}.ndjson"))).unwrap();
    assert!(
        text.contains("\"not_recorded\""),
        "{}",
        &text[..text.len().min(2000)]
    );
    assert!(
        !text.contains("still here"),
        "nothing is recorded after the marker"
    );
}

fn parse_raw(name: &[u8], text: &str) -> Vec<u8> {
    msg(b'P', &[name, b"\0", text.as_bytes(), b"\0\0\0"].concat())
}

fn bind_raw(stmt: &[u8]) -> Vec<u8> {
    msg(b'B', &[b"\0", stmt, b"\0\0\0\0\0\0\0"].concat())
}

fn close_raw(name: &[u8]) -> Vec<u8> {
    msg(b'C', &[b"S", name, b"\0"].concat())
}

/// The server keeps the first 63 bytes of a name: a Close of a second name
/// alike in those closes the first statement, a Parse of it gives that
/// statement a new text, and the Bind of the first name runs the new one.
/// The recording shows what ran.
#[test]
fn names_are_compared_in_their_first_63_bytes_as_the_server_does() {
    let Some((p, mut s)) = recording_session() else {
        return;
    };
    let a = "a".repeat(63);
    let (x, y) = (format!("{a}X"), format!("{a}Y"));
    let (tags, rows, codes) = batch(
        &mut s,
        &[
            parse_raw(x.as_bytes(), "SELECT 'benign'"),
            close_raw(y.as_bytes()),
            parse_raw(y.as_bytes(), "SELECT 'evil'"),
            bind_raw(x.as_bytes()),
            execute(),
            sync(),
        ],
    );
    assert_eq!(codes, Vec::<String>::new());
    assert_eq!((tags.as_str(), rows), ("1312DCZ", vec!["evil".to_string()]));
    terminate(s);

    let lines = recorded(&p);
    let shown: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["statement"].as_str())
        .collect();
    assert_eq!(shown, ["SELECT 'evil'"], "{lines:?}");
}

/// Under client_encoding LATIN1 the names \xfe and \xff are two server
/// statements that no UTF-8 decoding tells apart: the recorder never takes
/// such a name as known, and records its Execute as unknown rather than
/// as the other name's text.
#[test]
fn names_with_bytes_over_0x7f_are_recorded_as_unknown() {
    let Some((p, mut s)) = recording_session() else {
        return;
    };
    assert!(s.query("SET client_encoding = 'LATIN1'").is_ok());
    let (tags, rows, codes) = batch(
        &mut s,
        &[
            parse_raw(b"\xfe", "SELECT 'evil'"),
            parse_raw(b"\xff", "SELECT 'benign'"),
            bind_raw(b"\xfe"),
            execute(),
            sync(),
        ],
    );
    assert_eq!(codes, Vec::<String>::new());
    assert_eq!((tags.as_str(), rows), ("112DCZ", vec!["evil".to_string()]));
    terminate(s);

    let lines = recorded(&p);
    let shown: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["statement"].as_str())
        .collect();
    assert_eq!(shown.len(), 2, "{lines:?}");
    assert_eq!(shown[0], "SET client_encoding = 'LATIN1'");
    assert!(
        shown[1].starts_with("[jitgate: prepared statement")
            && shown[1].ends_with("not known to the recorder]"),
        "{lines:?}"
    );
}
