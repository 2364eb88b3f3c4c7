//! Output helpers shared by the client commands: field rendering, query
//! strings, and the two shapes every command prints (one object, or a table),
//! each with `--json` printing the API's JSON instead.
//!
//! Everything printed for a person goes through [`crate::text::escape`]:
//! reasons, comments, names and audit details come from other users (or, for
//! `auth.failed`, from anyone who can reach a listener) and must not drive
//! the reader's terminal. JSON output is escaped by its encoding. Writes go
//! through [`out`], so a reader that stops early (`| head`) ends the command
//! quietly instead of a panic.

use super::table;
use serde_json::Value;

pub use super::stdout::{note, out, out_bytes, StdoutClosed};

/// A field for a person: `-` for null, strings escaped.
pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => crate::text::escape(s).into_owned(),
        other => crate::text::escape(&other.to_string()).into_owned(),
    }
}

/// Text the user typed, echoed back: escaped like everything else.
pub fn esc(x: &str) -> String {
    crate::text::escape(x).into_owned()
}

pub fn remaining(v: &Value) -> String {
    match v.as_i64() {
        Some(n) if n > 0 => {
            humantime::format_duration(std::time::Duration::from_secs(n as u64)).to_string()
        }
        _ => "-".into(),
    }
}

/// Percent-encodes a path segment or query value.
pub fn enc(x: &str) -> String {
    let mut out = String::new();
    for b in x.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&...` from the pairs that are set; empty when none are.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn print_json(v: &Value) -> anyhow::Result<()> {
    out(&crate::text::escape_json(
        &serde_json::to_string_pretty(v).unwrap_or_default(),
    ))
}

/// One object: its JSON, or the human line(s) `human` renders (from
/// escaped fields: [`s`], [`esc`]).
pub fn show(as_json: bool, v: &Value, human: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
    if as_json {
        print_json(v)
    } else {
        out(&human(v))
    }
}

/// A list under `key`: its JSON, or a table of `row(item)`.
pub fn list(
    as_json: bool,
    v: &Value,
    key: &str,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> anyhow::Result<()> {
    if as_json {
        return print_json(v);
    }
    let rows: Vec<Vec<String>> = v[key].as_array().into_iter().flatten().map(row).collect();
    table::print(headers, &rows)
}
