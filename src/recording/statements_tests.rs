//! The statement log driven by synthetic protocol messages.

use super::*;

#[test]
fn row_counts_come_from_the_tag() {
    assert_eq!(rows_of("SELECT 3"), Some(3));
    assert_eq!(rows_of("INSERT 0 7"), Some(7));
    assert_eq!(rows_of("COPY 12"), Some(12));
    assert_eq!(rows_of("BEGIN"), None);
}

#[test]
fn the_framer_keeps_wanted_bodies_across_chunks() {
    let mut f = crate::recording::pg_framer::Framer::default();
    let mut msg = vec![b'Q'];
    msg.extend_from_slice(&(4 + 9i32).to_be_bytes());
    msg.extend_from_slice(b"select 1\0");
    let mut other = vec![b'd'];
    other.extend_from_slice(&(4 + 3i32).to_be_bytes());
    other.extend_from_slice(b"abc");
    let all = [other.clone(), msg.clone(), other].concat();
    let mut got = Vec::new();
    for b in all.chunks(2) {
        f.feed(b, b"Q", |t, body, _| got.push((t, body.to_vec())));
    }
    assert_eq!(got, vec![(b'Q', b"select 1\0".to_vec())]);
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(4 + body.len() as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A pipelined extended-protocol client: two batches, the second's
/// Parse failing; one line each, parameters never read.
#[test]
fn pipelined_batches_give_one_line_per_execute_with_rows_and_sqlstate() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let rec = Recording {
        tx,
        start: Instant::now(),
        failed: Default::default(),
        on_fail: std::sync::Arc::new(|_| {}),
        queued: Default::default(),
    };
    let log = StatementLog::new(rec);
    let client = [
        msg(b'P', b"s1\0select $1::int\0\0\0"),
        msg(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x06secret\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
        msg(b'P', b"\0selec oops\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    // Split anywhere, as the relay's reads are.
    for c in client.chunks(3) {
        log.client(c);
    }
    let server = [
        msg(b'1', b""),
        msg(b'2', b""),
        msg(b'D', b"\0\x01\0\0\0\x011"),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
        msg(b'E', b"SERROR\0C42601\0Msyntax error\0\0"),
        msg(b'Z', b"I"),
    ]
    .concat();
    for c in server.chunks(5) {
        log.server(c);
    }
    let mut lines = Vec::new();
    while let Ok(super::super::writer::Item::Line { bytes, .. }) = rx.try_recv() {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains("secret"), "{text}");
        lines.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["statement"], "select $1::int");
    assert_eq!(lines[0]["rows"], 1);
    assert!(lines[0]["sqlstate"].is_null());
    assert_eq!(lines[1]["statement"], "selec oops");
    assert_eq!(lines[1]["sqlstate"], "42601");
}

#[test]
fn an_error_response_gives_its_sqlstate() {
    let body = b"SERROR\0C42P01\0Mrelation does not exist\0\0";
    assert_eq!(sqlstate(body).as_deref(), Some("42P01"));
}

/// A statement log over a recording whose lines and failures are kept.
struct Harness {
    log: StatementLog,
    rx: tokio::sync::mpsc::Receiver<super::super::writer::Item>,
    failures: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Harness {
    fn new() -> Harness {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let failures = std::sync::Arc::new(Mutex::new(Vec::new()));
        let f = failures.clone();
        let rec = Recording {
            tx,
            start: Instant::now(),
            failed: Default::default(),
            on_fail: std::sync::Arc::new(move |why: WriteFailure| {
                f.lock().unwrap().push(why.to_string())
            }),
            queued: Default::default(),
        };
        Harness {
            log: StatementLog::new(rec),
            rx,
            failures,
        }
    }

    /// Client messages, then the server's answers, each split into small
    /// reads.
    fn exchange(&self, client: &[Vec<u8>], server: &[Vec<u8>]) {
        for c in client.concat().chunks(7) {
            self.log.client(c);
        }
        for c in server.concat().chunks(5) {
            self.log.server(c);
        }
    }

    fn lines(&mut self) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        while let Ok(super::super::writer::Item::Line { bytes, .. }) = self.rx.try_recv() {
            lines.push(serde_json::from_slice(&bytes).unwrap());
        }
        lines
    }
}

fn parse(name: &str, text: &str) -> Vec<u8> {
    msg(b'P', format!("{name}\0{text}\0\0\0").as_bytes())
}

fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    msg(b'B', format!("{portal}\0{stmt}\0\0\0\0\0\0\0").as_bytes())
}

fn execute(portal: &str) -> Vec<u8> {
    msg(b'E', format!("{portal}\0\0\0\0\0").as_bytes())
}

fn sync() -> Vec<u8> {
    msg(b'S', b"")
}

fn error(code: &str) -> Vec<u8> {
    msg(b'E', format!("SERROR\0C{code}\0Mno\0\0").as_bytes())
}

fn done(tag: &str) -> Vec<u8> {
    msg(b'C', format!("{tag}\0").as_bytes())
}

fn ready(status: u8) -> Vec<u8> {
    msg(b'Z', &[status])
}

fn statements(lines: &[serde_json::Value]) -> Vec<(String, Option<String>)> {
    lines
        .iter()
        .map(|l| {
            (
                l["statement"].as_str().unwrap_or_default().to_string(),
                l["sqlstate"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A re-Parse of a name the server already has is refused (42P05): the
/// server runs the first statement, and so does the recording.
#[test]
fn a_refused_parse_does_not_replace_the_statement_the_server_keeps() {
    let mut h = Harness::new();
    h.exchange(
        &[parse("s1", "select 1"), sync()],
        &[msg(b'1', b""), ready(b'I')],
    );
    // Pipelined: the refused Parse, then a Bind and Execute of the name.
    h.exchange(
        &[
            parse("s1", "drop table important"),
            bind("", "s1"),
            execute(""),
            sync(),
            bind("", "s1"),
            execute(""),
            sync(),
        ],
        &[
            error("42P05"),
            ready(b'I'),
            msg(b'2', b""),
            done("SELECT 1"),
            ready(b'I'),
        ],
    );
    let lines = h.lines();
    assert_eq!(
        statements(&lines),
        [
            ("drop table important".into(), Some("42P05".into())),
            ("select 1".into(), None),
        ],
        "{lines:?}"
    );
    assert_eq!(lines[1]["rows"], 1);
}

/// Close then Parse of the same name: the new text is recorded.
#[test]
fn close_then_parse_of_the_same_name_records_the_new_text() {
    let mut h = Harness::new();
    h.exchange(
        &[parse("s1", "select 1"), sync()],
        &[msg(b'1', b""), ready(b'I')],
    );
    h.exchange(
        &[
            msg(b'C', b"Ss1\0"),
            parse("s1", "select 2"),
            bind("p", "s1"),
            execute("p"),
            sync(),
        ],
        &[
            msg(b'3', b""),
            msg(b'1', b""),
            msg(b'2', b""),
            done("SELECT 1"),
            ready(b'I'),
        ],
    );
    assert_eq!(statements(&h.lines()), [("select 2".into(), None)]);
    // Closed and not parsed again: the server refuses its use, and the
    // recording does not show the closed text as what was run.
    h.exchange(
        &[msg(b'C', b"Ss1\0"), bind("", "s1"), execute(""), sync()],
        &[msg(b'3', b""), error("26000"), ready(b'I')],
    );
    assert_eq!(
        statements(&h.lines()),
        [(
            "[jitgate: prepared statement \"s1\" not known to the recorder]".into(),
            Some("26000".into())
        )]
    );
}

/// An error skips the rest of its batch: a Parse after it never took
/// effect, and the portal bound before it keeps its statement.
#[test]
fn steps_after_an_error_until_sync_take_no_effect() {
    let mut h = Harness::new();
    h.exchange(
        &[
            parse("", "select 1"),
            bind("p", ""),
            execute("p"),
            parse("", "delete from t"),
            bind("", ""),
            execute(""),
            sync(),
        ],
        &[msg(b'1', b""), msg(b'2', b""), error("22012"), ready(b'I')],
    );
    h.exchange(
        &[bind("", ""), execute(""), sync()],
        &[msg(b'2', b""), done("SELECT 1"), ready(b'I')],
    );
    assert_eq!(
        statements(&h.lines()),
        [
            ("select 1".into(), Some("22012".into())),
            ("select 1".into(), None),
        ]
    );
}

/// A portal of an ended transaction is gone: an Execute of it is not
/// recorded as the old statement.
#[test]
fn portals_end_with_their_transaction() {
    let mut h = Harness::new();
    h.exchange(
        &[parse("", "select 1"), bind("p", ""), sync()],
        &[msg(b'1', b""), msg(b'2', b""), ready(b'I')],
    );
    h.exchange(&[execute("p"), sync()], &[error("34000"), ready(b'I')]);
    let lines = h.lines();
    assert_eq!(lines.len(), 1);
    assert_ne!(lines[0]["statement"], "select 1", "{lines:?}");
    assert_eq!(lines[0]["sqlstate"], "34000");
}

/// More statements in flight than the bound: a marker line says how many
/// were not recorded, and the recording fails (so `on_failure` applies).
#[test]
fn too_many_statements_in_flight_is_a_marked_recording_failure() {
    let mut h = Harness::new();
    let queries: Vec<Vec<u8>> = (0..PENDING_CAP + 1)
        .map(|i| msg(b'Q', format!("select {i}\0").as_bytes()))
        .collect();
    h.exchange(&queries, &[]);
    let lines = h.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["not_recorded"], PENDING_CAP as u64 + 1);
    assert!(lines[0]["statement"].is_null());
    assert!(lines[0]["marker"]
        .as_str()
        .unwrap()
        .contains("not recorded"));
    let failures = h.failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("4097 statements were not recorded"));
    // The answers that come later record nothing more.
    h.exchange(&[], &[done("SELECT 1"), ready(b'I')]);
    assert!(h.lines().is_empty());
}

/// A statement longer than the head and tail kept: both ends, how much
/// was left out, and the digest of the whole text.
#[test]
fn a_long_statement_keeps_head_and_tail_and_the_digest() {
    use sha2::{Digest, Sha256};
    let pad = "x".repeat(300_000);
    let text = format!("select 1 /* {pad} */; drop table important");
    let mut h = Harness::new();
    h.exchange(
        &[msg(b'Q', format!("{text}\0").as_bytes())],
        &[done("SELECT 1"), done("DROP TABLE"), ready(b'I')],
    );
    h.exchange(
        &[parse("big", &text), bind("", "big"), execute(""), sync()],
        &[
            msg(b'1', b""),
            msg(b'2', b""),
            done("SELECT 1"),
            ready(b'I'),
        ],
    );
    let lines = h.lines();
    assert_eq!(lines.len(), 2);
    let want = hex::encode(Sha256::digest(text.as_bytes()));
    // The Parse's head also holds its name ("big\0").
    for (l, name) in lines.iter().zip([0, 4]) {
        let s = l["statement"].as_str().unwrap();
        assert!(s.starts_with("select 1 /* xxx"), "{}", &s[..40]);
        assert!(s.ends_with("xxx */; drop table important"));
        let left = text.len() + name
            - super::super::pg_framer::HEAD_CAP
            - super::super::pg_framer::TAIL_CAP;
        assert!(s.contains(&format!("…[jitgate: {left} bytes left out]…")));
        assert!(s.len() < 70_000);
        assert_eq!(l["statement_sha256"], want);
    }
    // A short one has no digest.
    h.exchange(&[msg(b'Q', b"select 2\0")], &[ready(b'I')]);
    assert!(h.lines()[0].get("statement_sha256").is_none());
}

/// SQL DEALLOCATE and PREPARE reuse a protocol statement's name: the
/// recording never shows the name's old text for it.
#[test]
fn sql_prepare_and_deallocate_forget_the_named_statements() {
    let mut h = Harness::new();
    h.exchange(
        &[parse("s1", "select 1"), sync()],
        &[msg(b'1', b""), ready(b'I')],
    );
    h.exchange(
        &[msg(b'Q', b"DEALLOCATE s1; PREPARE s1 AS DELETE FROM t\0")],
        &[done("DEALLOCATE"), done("PREPARE"), ready(b'I')],
    );
    h.exchange(
        &[bind("", "s1"), execute(""), sync()],
        &[msg(b'2', b""), done("DELETE 3"), ready(b'I')],
    );
    let lines = h.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[1]["statement"],
        "[jitgate: prepared statement \"s1\" not known to the recorder]"
    );
}

/// SQL cursors share the portals' names: within a transaction, `CLOSE c;
/// DECLARE c CURSOR FOR ...` (or a function closing and reopening a
/// refcursor "c") replaces a portal a Bind made. Any statement that ran
/// since forgets the named portals but its own, so the recording never
/// shows a bound text for what may be the cursor's query.
#[test]
fn a_statement_that_ran_forgets_the_other_named_portals() {
    let mut h = Harness::new();
    h.exchange(&[msg(b'Q', b"BEGIN\0")], &[done("BEGIN"), ready(b'T')]);
    h.exchange(
        &[parse("", "select 1"), bind("c", ""), bind("d", ""), sync()],
        &[msg(b'1', b""), msg(b'2', b""), msg(b'2', b""), ready(b'T')],
    );
    // A portal run in parts keeps its text: only it ran in between.
    h.exchange(
        &[execute("d"), execute("d"), sync()],
        &[msg(b's', b""), done("SELECT 1"), ready(b'T')],
    );
    h.exchange(
        &[msg(
            b'Q',
            b"CLOSE c; DECLARE c CURSOR FOR DELETE FROM t RETURNING 1\0",
        )],
        &[done("CLOSE CURSOR"), done("DECLARE CURSOR"), ready(b'T')],
    );
    h.exchange(
        &[execute("c"), execute("d"), sync()],
        &[done("SELECT 3"), done("SELECT 1"), ready(b'T')],
    );
    let shown: Vec<String> = h
        .lines()
        .iter()
        .map(|l| l["statement"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "BEGIN",
            "select 1",
            "select 1",
            "CLOSE c; DECLARE c CURSOR FOR DELETE FROM t RETURNING 1",
            "[jitgate: portal \"c\" not known to the recorder]",
            // Not replaced here, but it could have been: unknown too.
            "[jitgate: portal \"d\" not known to the recorder]",
        ],
    );
}

/// A Bind runs code too (a domain's CHECK on a parameter): binding one
/// portal forgets the other named ones.
#[test]
fn a_bind_forgets_the_other_named_portals() {
    let mut h = Harness::new();
    h.exchange(&[msg(b'Q', b"BEGIN\0")], &[done("BEGIN"), ready(b'T')]);
    h.exchange(
        &[parse("", "select 1"), bind("c", ""), bind("", ""), sync()],
        &[msg(b'1', b""), msg(b'2', b""), msg(b'2', b""), ready(b'T')],
    );
    h.exchange(&[execute("c"), sync()], &[done("SELECT 1"), ready(b'T')]);
    assert_eq!(
        h.lines()[1]["statement"],
        "[jitgate: portal \"c\" not known to the recorder]"
    );
}

/// Statement text held for what is in flight is bounded too: long
/// statements pipelined without reading the answers fail the recording
/// well before the statement bound.
#[test]
fn too_much_statement_text_in_flight_is_a_marked_recording_failure() {
    let mut h = Harness::new();
    let long = format!("select 1 -- {}\0", "x".repeat(60_000));
    let queries: Vec<Vec<u8>> = (0..1000).map(|_| msg(b'Q', long.as_bytes())).collect();
    h.exchange(&queries, &[]);
    let lines = h.lines();
    assert_eq!(lines.len(), 1, "{}", lines.len());
    let n = lines[0]["not_recorded"].as_u64().unwrap();
    assert!(n > 1 && n < 1000, "{n}");
    assert_eq!(h.failures.lock().unwrap().len(), 1);
}

#[path = "statements_limits_tests.rs"]
mod limits;
