//! Output helpers shared by the client commands: field rendering, query
//! strings, and the two shapes every command prints (one object, or a table),
//! each with `--json` printing the API's JSON instead.

use super::table;
use serde_json::Value;

pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
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

pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// One object: its JSON, or the human line(s) `human` renders.
pub fn show(as_json: bool, v: &Value, human: impl FnOnce(&Value) -> String) {
    if as_json {
        print_json(v)
    } else {
        println!("{}", human(v))
    }
}

/// A list under `key`: its JSON, or a table of `row(item)`.
pub fn list(
    as_json: bool,
    v: &Value,
    key: &str,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) {
    if as_json {
        return print_json(v);
    }
    let rows: Vec<Vec<String>> = v[key].as_array().into_iter().flatten().map(row).collect();
    table::print(headers, &rows);
}
