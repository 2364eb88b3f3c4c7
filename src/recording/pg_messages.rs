//! The few fields of PostgreSQL messages the statement log reads: names,
//! statement texts (whole, or head and tail with a digest), row counts and
//! SQLSTATEs.

use super::pg_framer::{text_start, Cut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A statement's text as recorded, with the SHA-256 of the whole text when
/// the recorded one is cut. Cloned, it is shared, not copied: the prepared
/// statement, every portal bound to it and every step in flight naming it
/// hold one text, counted once against the session's budget.
#[derive(Clone, Default)]
pub(super) struct Text {
    pub s: Arc<str>,
    pub sha256: Option<Arc<str>>,
    /// Its bytes in the session's budget, given back when the last clone
    /// goes.
    charge: Option<Arc<Charge>>,
}

/// Bytes of statement text a session's recorder holds at once, over its
/// prepared statements, portals and steps in flight (each text once,
/// however many hold it).
#[derive(Default)]
pub(super) struct Budget(Arc<AtomicUsize>);

struct Charge {
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Budget {
    /// Counts `t` as held until its last clone goes; `false` (and nothing
    /// counted) if that would take the session past `cap` bytes.
    pub fn charge(&self, t: &mut Text, cap: usize) -> bool {
        let bytes = t.s.len() + t.sha256.as_ref().map_or(0, |h| h.len());
        let held = self.0.load(Ordering::Relaxed);
        if held + bytes > cap {
            return false;
        }
        self.0.fetch_add(bytes, Ordering::Relaxed);
        t.charge = Some(Arc::new(Charge {
            bytes,
            held: self.0.clone(),
        }));
        true
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Text {
    pub fn plain(s: String) -> Text {
        Text {
            s: s.into(),
            sha256: None,
            charge: None,
        }
    }

    /// What an Execute of an unknown name is recorded as.
    pub fn unknown(what: &str, name: &Name) -> Text {
        let shown = String::from_utf8_lossy(name.bytes());
        Text::plain(format!(
            "[jitgate: {what} {shown:?} not known to the recorder]"
        ))
    }
}

/// NAMEDATALEN - 1: the bytes of a statement or portal name PostgreSQL
/// keeps; it ignores the rest, so two names alike in these are one.
pub(super) const NAME_MAX: usize = 63;

/// A prepared statement's or portal's name, as the server compares it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Name {
    /// ASCII only: the same bytes in every server encoding, so the server
    /// keeps exactly these (its first `NAME_MAX` bytes).
    Known(Vec<u8>),
    /// Has a byte >= 0x80: the server converts it from the client encoding
    /// and cuts it at a character boundary of its own encoding, so which
    /// name it becomes (perhaps an ASCII one, perhaps one shared with
    /// other bytes) is not known here. Never stored, never looked up; only
    /// its first `NAME_MAX` bytes are kept, to be shown.
    Foreign(Vec<u8>),
}

impl Name {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Name::Known(b) | Name::Foreign(b) => b,
        }
    }
}

/// The name at the start of `b` (NUL-terminated), and what follows it.
pub(super) fn name(b: &[u8]) -> (Name, &[u8]) {
    let (raw, rest) = match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[][..]),
    };
    let kept = raw[..raw.len().min(NAME_MAX)].to_vec();
    let n = if raw.is_ascii() {
        Name::Known(kept)
    } else {
        Name::Foreign(kept)
    };
    (n, rest)
}

/// The first NUL-terminated string of `b`, and what follows it.
pub(super) fn cstr(b: &[u8]) -> (String, &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (String::from_utf8_lossy(&b[..i]).into_owned(), &b[i + 1..]),
        None => (String::from_utf8_lossy(b).into_owned(), &[]),
    }
}

/// The statement text of a Query or Parse body: whole, or head and tail
/// around a mark of how many bytes were left out, with the whole text's
/// SHA-256.
pub(super) fn text(tag: u8, body: &[u8], cut: Option<Cut>) -> Text {
    let head = body
        .get(text_start(tag, body).unwrap_or(body.len())..)
        .unwrap_or_default();
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if let Some(end) = head.iter().position(|&c| c == 0) {
        return Text::plain(lossy(&head[..end]));
    }
    match cut {
        None => Text::plain(lossy(head)),
        Some(Cut {
            tail,
            elided,
            sha256: Some(sha),
        }) => {
            if elided == 0 {
                return Text::plain(lossy(&[head, &tail[..]].concat()));
            }
            Text {
                s: format!(
                    "{}…[jitgate: {elided} bytes left out]…{}",
                    lossy(head),
                    lossy(&tail)
                )
                .into(),
                sha256: Some(hex::encode(sha).into()),
                charge: None,
            }
        }
        Some(_) => Text::plain(format!("{}{}", lossy(head), crate::audit::TRUNCATED)),
    }
}

/// The row count at the end of a CommandComplete tag ("SELECT 3",
/// "INSERT 0 1", "COPY 5"), if it has one.
pub(super) fn rows_of(tag: &str) -> Option<u64> {
    tag.rsplit(' ').next().and_then(|n| n.parse().ok())
}

/// Whether a CommandComplete tag is of SQL `PREPARE` or `DEALLOCATE`.
pub(super) fn is_sql_prepare(tag: &str) -> bool {
    tag == "PREPARE" || tag.starts_with("DEALLOCATE")
}

/// The SQLSTATE field of an ErrorResponse body.
pub(super) fn sqlstate(body: &[u8]) -> Option<String> {
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
