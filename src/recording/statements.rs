//! PostgreSQL statements as JSON lines: `{"at", "statement", "duration_ms",
//! "rows", "sqlstate"}`, one per simple Query and one per extended-protocol
//! Execute, taken from the relayed bytes without changing them. Bind
//! parameters are never read.
//!
//! Matching answers to what the client sent: the server answers in order,
//! so one FIFO of the client's steps (Query, Parse, Bind, Describe, Close,
//! Execute, Sync, FunctionCall) is enough. Names take effect when the
//! server confirms them, never when the client asks: a Parse at its
//! ParseComplete, a Bind at its BindComplete, a Close at its CloseComplete.
//! A refused Parse (a duplicate name, 42P05) therefore never replaces the
//! statement the server keeps. An ErrorResponse to an extended-protocol
//! step makes the server skip everything up to the next Sync, so the steps
//! before that Sync are dropped unapplied (their Executes never ran).
//!
//! CommandComplete, EmptyQueryResponse and PortalSuspended finish an
//! Execute, whose text is the portal's as of then; an ErrorResponse
//! finishes it with its SQLSTATE; a Query is written at its ReadyForQuery,
//! with the rows of its last CommandComplete (a COPY's row count included).
//!
//! More statements in flight than `PENDING_CAP`, or more statement text
//! held than `TEXT_BUDGET`, is a recording failure: a marker line says how
//! many were not recorded, and `on_failure` applies.

use super::pg_framer::{Cut, Framer};
use super::pg_messages::{cstr, is_sql_prepare, name, rows_of, sqlstate, text, Budget, Name, Text};
use super::{Recording, WriteFailure};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// Named statements and portals remembered at once; a client that makes
/// more is recorded with its statement unknown. Their texts are bounded by
/// `TEXT_BUDGET`, not by this count.
const NAMES_CAP: usize = 4096;
/// Statements (Queries and Executes) in flight at once (pipelining); one
/// more is a recording failure.
pub(super) const PENDING_CAP: usize = 4096;
/// Protocol steps in flight at once (a statement is about four: Parse,
/// Bind, Describe, Execute); one more is a recording failure.
const STEPS_CAP: usize = 4 * PENDING_CAP;
/// Bytes of statement text a session's recorder holds at once, over its
/// prepared statements, portals and steps in flight (texts are shared, each
/// counted once); more is a recording failure. Each text is at most 64 KiB
/// kept, up to three times that once decoded, so the counts alone
/// (`NAMES_CAP`, `STEPS_CAP`) would allow well over 1 GiB.
pub(super) const TEXT_BUDGET: usize = 32 << 20;

struct Line {
    text: Text,
    at_ms: i64,
    start: Instant,
    rows: Option<u64>,
    sqlstate: Option<String>,
}

impl Line {
    fn new(text: Text) -> Line {
        Line {
            text,
            at_ms: crate::clock::now_ms(),
            start: Instant::now(),
            rows: None,
            sqlstate: None,
        }
    }
}

/// One client message the server will answer, in order.
enum Step {
    /// Answered by ParseComplete.
    Parse { name: Name, line: Line },
    /// Answered by BindComplete; `line` gets the statement's text if the
    /// Bind fails.
    Bind {
        portal: Name,
        stmt: Name,
        line: Line,
    },
    /// Answered by CloseComplete.
    Close { portal: bool, name: Name },
    /// Answered by RowDescription or NoData.
    Describe,
    /// Answered by CommandComplete, EmptyQueryResponse, PortalSuspended or
    /// an ErrorResponse; its text is looked up then.
    Exec { portal: Name, line: Line },
    /// Answered by ReadyForQuery.
    Simple(Line),
    /// Answered by ReadyForQuery; `line` holds the last statement parsed in
    /// its batch, recorded if the Sync itself fails (a deferred commit).
    Sync(Line),
    /// A FunctionCall, answered by ReadyForQuery.
    Function,
}

impl Step {
    fn is_statement(&self) -> bool {
        matches!(self, Step::Exec { .. } | Step::Simple(_))
    }
}

#[derive(Default)]
struct State {
    steps: VecDeque<Step>,
    /// Steps that are statements (Exec, Simple).
    statements: usize,
    /// Bytes of statement text held, over the steps and both maps.
    budget: Budget,
    /// By name as the server compares it (`Name::Known`).
    prepared: HashMap<Vec<u8>, Text>,
    portals: HashMap<Vec<u8>, Text>,
    /// The last statement parsed since the last Sync.
    parsed: Option<Text>,
    /// Too much in flight: nothing more is recorded.
    stopped: bool,
}

/// One PostgreSQL session's statement log.
pub struct StatementLog {
    rec: Recording,
    client: Mutex<Framer>,
    server: Mutex<Framer>,
    state: Mutex<State>,
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
        if self.rec.failed() {
            return;
        }
        let (Ok(mut f), Ok(mut st)) = (self.client.lock(), self.state.lock()) else {
            return;
        };
        let rec = &self.rec;
        f.feed(data, b"QPBEDCSF", |tag, body, cut| {
            st.on_client(tag, body, cut, rec)
        });
    }

    /// Bytes the server sent.
    pub fn server(&self, data: &[u8]) {
        if self.rec.failed() {
            return;
        }
        let (Ok(mut f), Ok(mut st)) = (self.server.lock(), self.state.lock()) else {
            return;
        };
        let rec = &self.rec;
        f.feed(data, b"123CEIsZTn", |tag, body, _| {
            st.on_server(tag, body, rec)
        });
    }
}

impl State {
    fn push(&mut self, step: Step, rec: &Recording) {
        if self.stopped {
            return;
        }
        let statement = step.is_statement();
        if self.steps.len() >= STEPS_CAP || (statement && self.statements >= PENDING_CAP) {
            return self.overflow(rec, u64::from(statement));
        }
        self.statements += usize::from(statement);
        self.steps.push_back(step);
    }

    fn pop(&mut self) -> Option<Step> {
        let s = self.steps.pop_front()?;
        self.statements -= usize::from(s.is_statement());
        Some(s)
    }

    /// Too much in flight: the statements sent and not yet answered (and
    /// `more`) will never be recorded. Says so in the recording, then fails
    /// it (`on_failure` decides whether the session goes on, unrecorded).
    fn overflow(&mut self, rec: &Recording, more: u64) {
        let n = self.statements as u64 + more;
        let v = json!({
            "at": crate::clock::rfc3339(crate::clock::now_ms()),
            "marker": format!(
                "statements not recorded: too many in flight or too much statement text \
                 held (at most {PENDING_CAP} \
                 statements, {STEPS_CAP} protocol messages, {} MiB of statement text \
                 held); {n} sent and not recorded, none after them recorded",
                TEXT_BUDGET >> 20
            ),
            "not_recorded": n,
        });
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        rec.push(line);
        rec.fail(WriteFailure::Unrecorded { not_recorded: n });
        *self = State {
            stopped: true,
            ..State::default()
        };
    }

    /// A name the server confirmed. One it may have stored under another
    /// name (`Name::Foreign`) is not remembered: an Execute of it is
    /// recorded as unknown.
    fn remember(map: &mut HashMap<Vec<u8>, Text>, name: Name, value: Text) {
        let Name::Known(name) = name else { return };
        if map.len() < NAMES_CAP || map.contains_key(&name) {
            map.insert(name, value);
        }
    }

    /// A name the server closed. Which one a `Name::Foreign` closed is not
    /// known here, so every named one is forgotten (the unnamed one has no
    /// bytes to be cut or converted into).
    fn forget(map: &mut HashMap<Vec<u8>, Text>, name: &Name) {
        match name {
            Name::Known(n) => {
                map.remove(n);
            }
            Name::Foreign(_) => map.retain(|n, _| n.is_empty()),
        }
    }

    /// The text of a Query or Parse, counted in the session's budget; past
    /// it, the recording fails (`None`).
    fn charged(&mut self, tag: u8, body: &[u8], cut: Option<Cut>, rec: &Recording) -> Option<Text> {
        if self.stopped {
            return None;
        }
        let mut t = text(tag, body, cut);
        if self.budget.charge(&mut t, TEXT_BUDGET) {
            return Some(t);
        }
        self.overflow(rec, u64::from(tag == b'Q'));
        None
    }

    fn on_client(&mut self, tag: u8, body: &[u8], cut: Option<Cut>, rec: &Recording) {
        let step = match tag {
            b'Q' => {
                let Some(t) = self.charged(tag, body, cut, rec) else {
                    return;
                };
                Step::Simple(Line::new(t))
            }
            b'P' => {
                let Some(t) = self.charged(tag, body, cut, rec) else {
                    return;
                };
                self.parsed = Some(t.clone());
                Step::Parse {
                    name: name(body).0,
                    line: Line::new(t),
                }
            }
            b'B' => {
                let (portal, rest) = name(body);
                Step::Bind {
                    portal,
                    stmt: name(rest).0,
                    line: Line::new(Text::default()),
                }
            }
            b'E' => Step::Exec {
                portal: name(body).0,
                line: Line::new(Text::default()),
            },
            b'D' => Step::Describe,
            b'C' => Step::Close {
                portal: body.first() == Some(&b'P'),
                name: name(body.get(1..).unwrap_or_default()).0,
            },
            b'S' => Step::Sync(Line::new(self.parsed.take().unwrap_or_default())),
            b'F' => Step::Function,
            _ => return,
        };
        self.push(step, rec);
    }

    fn statement(&self, name: &Name) -> Text {
        Self::lookup(&self.prepared, name)
            .unwrap_or_else(|| Text::unknown("prepared statement", name))
    }

    fn portal(&self, name: &Name) -> Text {
        Self::lookup(&self.portals, name).unwrap_or_else(|| Text::unknown("portal", name))
    }

    fn lookup(map: &HashMap<Vec<u8>, Text>, name: &Name) -> Option<Text> {
        match name {
            Name::Known(n) => map.get(n).cloned(),
            Name::Foreign(_) => None,
        }
    }

    /// A statement ran (an Execute of `portal`, a Bind of it, a Query, a
    /// FunctionCall):
    /// it may have replaced any named portal but its own, as SQL cursors
    /// share the portals' names (`CLOSE c; DECLARE c CURSOR FOR ...`, or a
    /// PL/pgSQL function closing and reopening a refcursor named "c"), and
    /// which one is in SQL or in a function, not read here. So every other
    /// named portal is forgotten: an Execute of one is recorded as unknown,
    /// never as the text it was bound to. The unnamed portal cannot be
    /// made by a cursor, and a portal cannot be replaced while it runs.
    fn ran(&mut self, portal: Option<&Name>) {
        let keep = match portal {
            Some(Name::Known(n)) => n.as_slice(),
            _ => &[],
        };
        self.portals
            .retain(|name, _| name.is_empty() || name.as_slice() == keep);
    }

    /// After an ErrorResponse to an extended-protocol step the server
    /// discards every message until the next Sync: so are their steps.
    fn skip_to_sync(&mut self) {
        while self
            .steps
            .front()
            .is_some_and(|s| !matches!(s, Step::Sync(_)))
        {
            self.pop();
        }
    }

    fn on_server(&mut self, tag: u8, body: &[u8], rec: &Recording) {
        if self.stopped {
            return;
        }
        match (tag, self.steps.front()) {
            (b'1', Some(Step::Parse { .. })) => {
                if let Some(Step::Parse { name, line }) = self.pop() {
                    Self::remember(&mut self.prepared, name, line.text);
                }
            }
            (b'2', Some(Step::Bind { .. })) => {
                if let Some(Step::Bind { portal, stmt, .. }) = self.pop() {
                    let t = self.statement(&stmt);
                    // A Bind runs code too (a domain's CHECK on a
                    // parameter, a function folded while planning), which
                    // may reopen a named portal as a cursor.
                    self.ran(Some(&portal));
                    Self::remember(&mut self.portals, portal, t);
                }
            }
            (b'3', Some(Step::Close { .. })) => {
                if let Some(Step::Close { portal, name }) = self.pop() {
                    let map = if portal {
                        &mut self.portals
                    } else {
                        &mut self.prepared
                    };
                    Self::forget(map, &name);
                }
            }
            (b'T' | b'n', Some(Step::Describe)) => {
                self.pop();
            }
            (b'C' | b'I' | b's', Some(_)) => {
                let rows = (tag == b'C').then(|| rows_of(&cstr(body).0)).flatten();
                // SQL PREPARE and DEALLOCATE share the names of the
                // protocol's statements; which names is in SQL not read
                // here, so every named one is forgotten (an Execute of one
                // is then recorded as unknown, never as a stale text).
                if tag == b'C' && is_sql_prepare(&cstr(body).0) {
                    self.prepared.retain(|name, _| name.is_empty());
                }
                match self.steps.front_mut() {
                    Some(Step::Simple(l)) => l.rows = rows.or(l.rows),
                    Some(Step::Exec { .. }) => {
                        if let Some(Step::Exec { portal, mut line }) = self.pop() {
                            line.text = self.portal(&portal);
                            line.rows = rows;
                            write(rec, &line);
                            self.ran(Some(&portal));
                        }
                    }
                    _ => {}
                }
            }
            (b'E', Some(_)) => self.on_error(sqlstate(body), rec),
            (b'Z', _) => {
                while let Some(s) = self.pop() {
                    match s {
                        Step::Simple(l) => {
                            write(rec, &l);
                            // A Query replaces the unnamed statement and
                            // portal.
                            self.prepared.remove(&b""[..]);
                            self.portals.remove(&b""[..]);
                            self.ran(None);
                            break;
                        }
                        Step::Function => {
                            self.ran(None);
                            break;
                        }
                        Step::Sync(_) => break,
                        // Never ran or never confirmed: an error earlier
                        // in its batch.
                        _ => {}
                    }
                }
                // Idle: the transaction ended, and its portals with it.
                if body.first() == Some(&b'I') {
                    self.portals.clear();
                }
            }
            _ => {}
        }
    }

    fn on_error(&mut self, code: Option<String>, rec: &Recording) {
        match self.steps.front_mut() {
            Some(Step::Simple(l)) => {
                l.sqlstate = code;
                return;
            }
            // The Sync itself failed (a deferred constraint at commit):
            // the batch's statement, once.
            Some(Step::Sync(l)) => {
                if !l.text.s.is_empty() {
                    l.sqlstate = code;
                    write(rec, l);
                    l.text = Text::default();
                }
                return;
            }
            Some(Step::Function) | None => return,
            _ => {}
        }
        match self.pop() {
            Some(Step::Exec { portal, mut line }) => {
                line.text = self.portal(&portal);
                line.sqlstate = code;
                write(rec, &line);
                self.ran(Some(&portal));
            }
            Some(Step::Parse { name, mut line }) => {
                line.sqlstate = code;
                write(rec, &line);
                // The server drops the unnamed statement before parsing
                // its replacement, so a failed one leaves none.
                if name == Name::Known(Vec::new()) {
                    self.prepared.remove(&b""[..]);
                }
            }
            Some(Step::Bind { stmt, mut line, .. }) => {
                line.text = self.statement(&stmt);
                line.sqlstate = code;
                write(rec, &line);
            }
            _ => {}
        }
        self.skip_to_sync();
    }
}

fn write(rec: &Recording, p: &Line) {
    let mut v = json!({
        "at": crate::clock::rfc3339(p.at_ms),
        "statement": p.text.s,
        "duration_ms": (p.start.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        "rows": p.rows,
        "sqlstate": p.sqlstate,
    });
    if let Some(sha) = &p.text.sha256 {
        v["statement_sha256"] = json!(sha);
    }
    let mut line = serde_json::to_vec(&v).unwrap_or_default();
    line.push(b'\n');
    rec.push(line);
}

#[cfg(test)]
#[path = "statements_tests.rs"]
mod tests;
