//! PostgreSQL statements as JSON lines: `{"at", "statement", "duration_ms",
//! "rows", "sqlstate"}`, one per simple Query and one per extended-protocol
//! Execute, taken from the relayed bytes without changing them.
//!
//! Each direction has its own framer: it keeps the bodies of the few
//! messages read here (up to `BODY_CAP` bytes each) and skips the rest, so
//! a 512 MiB frame costs nothing. Bind parameters are never read.
//!
//! Matching answers to statements: the server answers in order, so a FIFO
//! of what the client sent (Query, Execute, and Sync or FunctionCall as
//! batch ends) is enough. CommandComplete, EmptyQueryResponse and
//! PortalSuspended finish an Execute; an ErrorResponse finishes it with its
//! SQLSTATE (the Executes after it until Sync never run, and are dropped at
//! ReadyForQuery); a Query is written at its ReadyForQuery, with the rows
//! of its last CommandComplete (a COPY's row count included).

use super::Recording;
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// The longest body kept of a message read here; a longer statement is
/// recorded cut, with a mark.
const BODY_CAP: usize = 64 << 10;
/// Named statements and portals remembered at once; a client that makes
/// more is recorded with its statement unknown.
const NAMES_CAP: usize = 4096;
/// Statements in flight at once (pipelining); beyond this they are not
/// recorded.
const PENDING_CAP: usize = 4096;

#[derive(Default)]
struct Framer {
    header: [u8; 5],
    have: usize,
    remaining: u64,
    keep: bool,
    body: Vec<u8>,
    truncated: bool,
}

impl Framer {
    /// Feeds relayed bytes; calls `on` with each complete message of a
    /// tag in `wanted` (its body, maybe cut, and whether it was cut).
    fn feed(&mut self, mut data: &[u8], wanted: &[u8], mut on: impl FnMut(u8, &[u8], bool)) {
        while !data.is_empty() {
            if self.have < 5 {
                let take = (5 - self.have).min(data.len());
                self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < 5 {
                    return;
                }
                let len = i32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.remaining = (len.max(4) - 4) as u64;
                self.keep = wanted.contains(&self.header[0]);
                self.body.clear();
                self.truncated = false;
            }
            let take = (self.remaining.min(data.len() as u64)) as usize;
            if self.keep {
                let room = BODY_CAP.saturating_sub(self.body.len()).min(take);
                self.body.extend_from_slice(&data[..room]);
                self.truncated |= room < take;
            }
            self.remaining -= take as u64;
            data = &data[take..];
            if self.remaining == 0 {
                if self.keep {
                    on(self.header[0], &self.body, self.truncated);
                }
                self.have = 0;
            }
        }
    }
}

enum Kind {
    Simple,
    Exec,
    /// Sync or FunctionCall: the end of a batch, answered by ReadyForQuery.
    Batch,
}

struct Pending {
    kind: Kind,
    text: String,
    at_ms: i64,
    start: Instant,
    rows: Option<u64>,
    sqlstate: Option<String>,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Pending>,
    prepared: HashMap<String, String>,
    portals: HashMap<String, String>,
    /// The last statement parsed since the last Sync: a batch that fails
    /// before any Execute (a Parse error) is recorded as that statement.
    parsed: Option<String>,
}

/// One PostgreSQL session's statement log.
pub struct StatementLog {
    rec: Recording,
    client: Mutex<Framer>,
    server: Mutex<Framer>,
    state: Mutex<State>,
}

/// The first NUL-terminated string of `b`, and what follows it.
fn cstr(b: &[u8]) -> (String, &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (String::from_utf8_lossy(&b[..i]).into_owned(), &b[i + 1..]),
        None => (String::from_utf8_lossy(b).into_owned(), &[]),
    }
}

fn text(body: &[u8], cut: bool) -> String {
    let (mut s, _) = cstr(body);
    if cut {
        s.push_str(crate::audit::TRUNCATED);
    }
    s
}

/// The row count at the end of a CommandComplete tag ("SELECT 3",
/// "INSERT 0 1", "COPY 5"), if it has one.
pub fn rows_of(tag: &str) -> Option<u64> {
    tag.rsplit(' ').next().and_then(|n| n.parse().ok())
}

/// The SQLSTATE field of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> Option<String> {
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let (value, next) = cstr(tail);
        if code == b'C' {
            return Some(value);
        }
        rest = next;
    }
    None
}

impl StatementLog {
    pub fn new(rec: Recording) -> StatementLog {
        StatementLog {
            rec,
            client: Default::default(),
            server: Default::default(),
            state: Default::default(),
        }
    }

    /// Bytes the client sent (after the startup).
    pub fn client(&self, data: &[u8]) {
        let (Ok(mut f), Ok(mut st)) = (self.client.lock(), self.state.lock()) else {
            return;
        };
        f.feed(data, b"QPBESF", |tag, body, cut| {
            st.on_client(tag, body, cut)
        });
    }

    /// Bytes the server sent.
    pub fn server(&self, data: &[u8]) {
        let (Ok(mut f), Ok(mut st)) = (self.server.lock(), self.state.lock()) else {
            return;
        };
        let rec = &self.rec;
        f.feed(data, b"CEIsZ", |tag, body, _| st.on_server(tag, body, rec));
    }
}

impl State {
    fn push(&mut self, kind: Kind, text: String) {
        if self.pending.len() >= PENDING_CAP {
            return;
        }
        self.pending.push_back(Pending {
            kind,
            text,
            at_ms: crate::clock::now_ms(),
            start: Instant::now(),
            rows: None,
            sqlstate: None,
        });
    }

    fn remember(map: &mut HashMap<String, String>, name: String, value: String) {
        if map.len() < NAMES_CAP || map.contains_key(&name) {
            map.insert(name, value);
        }
    }

    fn on_client(&mut self, tag: u8, body: &[u8], cut: bool) {
        match tag {
            b'Q' => self.push(Kind::Simple, text(body, cut)),
            b'P' => {
                let (name, rest) = cstr(body);
                let t = text(rest, cut);
                self.parsed = Some(t.clone());
                Self::remember(&mut self.prepared, name, t);
            }
            b'B' => {
                let (portal, rest) = cstr(body);
                let (stmt, _) = cstr(rest);
                let t = self.prepared.get(&stmt).cloned().unwrap_or_default();
                Self::remember(&mut self.portals, portal, t);
            }
            b'E' => {
                let (portal, _) = cstr(body);
                let t = self.portals.get(&portal).cloned().unwrap_or_default();
                self.push(Kind::Exec, t);
            }
            b'S' => {
                let t = self.parsed.take().unwrap_or_default();
                self.push(Kind::Batch, t);
            }
            b'F' => self.push(Kind::Batch, String::new()),
            _ => {}
        }
    }

    fn on_server(&mut self, tag: u8, body: &[u8], rec: &Recording) {
        match tag {
            b'C' | b'I' | b's' => {
                let rows = (tag == b'C').then(|| rows_of(&cstr(body).0)).flatten();
                match self.pending.front_mut() {
                    Some(p) if matches!(p.kind, Kind::Simple) => p.rows = rows.or(p.rows),
                    Some(p) if matches!(p.kind, Kind::Exec) => {
                        p.rows = rows;
                        if let Some(p) = self.pending.pop_front() {
                            write(rec, &p);
                        }
                    }
                    _ => {}
                }
            }
            b'E' => {
                let code = sqlstate(body);
                match self.pending.front_mut() {
                    Some(p) if matches!(p.kind, Kind::Simple) => p.sqlstate = code,
                    Some(p) if matches!(p.kind, Kind::Exec) => {
                        p.sqlstate = code;
                        if let Some(p) = self.pending.pop_front() {
                            write(rec, &p);
                        }
                    }
                    // Failed before any Execute (Parse, Bind): the
                    // statement parsed in the batch, once.
                    Some(p) if !p.text.is_empty() => {
                        p.sqlstate = code;
                        write(rec, p);
                        p.text.clear();
                    }
                    _ => {}
                }
            }
            b'Z' => {
                while let Some(p) = self.pending.pop_front() {
                    match p.kind {
                        Kind::Simple => {
                            write(rec, &p);
                            break;
                        }
                        Kind::Batch => break,
                        // Never ran: an error earlier in its batch.
                        Kind::Exec => {}
                    }
                }
            }
            _ => {}
        }
    }
}

fn write(rec: &Recording, p: &Pending) {
    let v = json!({
        "at": crate::clock::rfc3339(p.at_ms),
        "statement": p.text,
        "duration_ms": (p.start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        "rows": p.rows,
        "sqlstate": p.sqlstate,
    });
    let mut line = serde_json::to_vec(&v).unwrap_or_default();
    line.push(b'\n');
    rec.push(line);
}

#[cfg(test)]
mod tests {
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
        let mut f = Framer::default();
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
}
