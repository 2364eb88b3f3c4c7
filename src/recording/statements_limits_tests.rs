//! Names as PostgreSQL compares them, and the budget of statement text a
//! session's recorder holds.

use super::*;

fn parse_raw(name: &[u8], text: &str) -> Vec<u8> {
    msg(b'P', &[name, b"\0", text.as_bytes(), b"\0\0\0"].concat())
}

fn bind_raw(stmt: &[u8]) -> Vec<u8> {
    msg(b'B', &[b"\0", stmt, b"\0\0\0\0\0\0\0"].concat())
}

/// PostgreSQL keeps the first 63 bytes of a name: a Close of another name
/// alike in those closes the same statement, and the Parse after it
/// replaces its text. The recording follows the server, not the full name.
#[test]
fn names_alike_in_their_first_63_bytes_are_one_statement() {
    let mut h = Harness::new();
    let a = "a".repeat(63);
    let (x, y) = (format!("{a}X"), format!("{a}Y"));
    h.exchange(
        &[
            parse_raw(x.as_bytes(), "select 'benign'"),
            msg(b'C', format!("S{y}\0").as_bytes()),
            parse_raw(y.as_bytes(), "select 'evil'"),
            bind_raw(x.as_bytes()),
            execute(""),
            sync(),
        ],
        &[
            msg(b'1', b""),
            msg(b'3', b""),
            msg(b'1', b""),
            msg(b'2', b""),
            done("SELECT 1"),
            ready(b'I'),
        ],
    );
    assert_eq!(statements(&h.lines()), [("select 'evil'".into(), None)]);
}

/// A name with a byte >= 0x80 becomes whatever the server's encoding makes
/// of it: never stored, and its Execute recorded as unknown, never as a
/// text another such name had (both would decode to U+FFFD here).
#[test]
fn names_with_bytes_over_0x7f_are_never_taken_as_known() {
    let mut h = Harness::new();
    h.exchange(
        &[
            parse_raw(b"\xfe", "select 'benign'"),
            parse_raw(b"\xff", "select 'evil'"),
            bind_raw(b"\xfe"),
            execute(""),
            sync(),
        ],
        &[
            msg(b'1', b""),
            msg(b'1', b""),
            msg(b'2', b""),
            done("SELECT 1"),
            ready(b'I'),
        ],
    );
    let got = statements(&h.lines());
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].0.contains("not known to the recorder"), "{got:?}");
    // Its Close may have closed any named statement: all are forgotten.
    let b = "b".repeat(62);
    h.exchange(
        &[
            parse(&b, "select 'old'"),
            msg(b'C', &[b"S", b.as_bytes(), "é\0".as_bytes()].concat()),
            bind("", &b),
            execute(""),
            sync(),
        ],
        &[
            msg(b'1', b""),
            msg(b'3', b""),
            msg(b'2', b""),
            done("SELECT 1"),
            ready(b'I'),
        ],
    );
    let got = statements(&h.lines());
    assert!(got[0].0.contains("not known to the recorder"), "{got:?}");
}

/// `n` named statements of about 60 KB each, confirmed by the server.
fn parse_many(h: &Harness, prefix: &str, n: usize) {
    let long = "x".repeat(60_000);
    let parses: Vec<Vec<u8>> = (0..n)
        .map(|i| parse(&format!("{prefix}{i}"), &format!("select 1 -- {long}")))
        .collect();
    let done: Vec<Vec<u8>> = (0..n).map(|_| msg(b'1', b"")).collect();
    h.exchange(
        &[parses, vec![sync()]].concat(),
        &[done, vec![ready(b'I')]].concat(),
    );
}

/// Statement text the server confirmed counts too: prepared statements
/// past the session's budget (32 MiB) are a marked recording failure, not
/// an unbounded hold.
#[test]
fn prepared_statements_past_the_text_budget_are_a_marked_recording_failure() {
    let mut h = Harness::new();
    parse_many(&h, "s", 400);
    assert!(h.lines().is_empty());
    assert!(h.failures.lock().unwrap().is_empty());
    parse_many(&h, "t", 400);
    let lines = h.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0]["marker"].as_str().unwrap().contains("32 MiB"));
    assert_eq!(h.failures.lock().unwrap().len(), 1);
}

/// Portals bound to a statement share its text: thousands of them hold
/// one text's bytes. Closed statements give their bytes back.
#[test]
fn texts_are_shared_and_closed_ones_leave_the_budget() {
    let mut h = Harness::new();
    parse_many(&h, "s", 1);
    let binds: Vec<Vec<u8>> = (0..3000).map(|i| bind(&format!("p{i}"), "s0")).collect();
    let done: Vec<Vec<u8>> = (0..3000).map(|_| msg(b'2', b"")).collect();
    h.exchange(
        &[binds, vec![sync()]].concat(),
        &[done, vec![ready(b'T')]].concat(),
    );
    let held = h.log.state.lock().unwrap().budget.held();
    assert!(held > 60_000 && held < 70_000, "{held}");
    let closes: Vec<Vec<u8>> = (0..1)
        .map(|i| msg(b'C', format!("Ss{i}\0").as_bytes()))
        .collect();
    h.exchange(
        &[closes, vec![sync()]].concat(),
        &[vec![msg(b'3', b""), ready(b'I')]].concat(),
    );
    assert_eq!(h.log.state.lock().unwrap().budget.held(), 0);
    parse_many(&h, "s", 400);
    let closes: Vec<Vec<u8>> = (0..400)
        .map(|i| msg(b'C', format!("Ss{i}\0").as_bytes()))
        .collect();
    let done: Vec<Vec<u8>> = (0..400).map(|_| msg(b'3', b"")).collect();
    h.exchange(
        &[closes, vec![sync()]].concat(),
        &[done, vec![ready(b'I')]].concat(),
    );
    parse_many(&h, "t", 400);
    assert!(h.lines().is_empty());
    assert!(h.failures.lock().unwrap().is_empty());
}
