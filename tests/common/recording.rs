//! Reading what `[recording]` wrote: the files under the recordings dir,
//! and the `session.ended` events that seal them.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The `[recording]` section the tests use, with `ssh` and `on_failure`.
pub fn section(ssh: &str, on_failure: &str) -> String {
    format!("\n[recording]\nssh = \"{ssh}\"\npostgres = \"statements\"\non_failure = \"{on_failure}\"\n")
}

/// The recordings dir of a daemon whose data_dir is `DIR/data`.
pub fn dir(daemon_dir: &Path) -> PathBuf {
    daemon_dir.join("data").join("recordings")
}

/// Every `session.ended` event in an audit listing (JSON text).
pub fn ended_events(audit: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(audit).unwrap_or(Value::Null);
    let rows = v
        .get("events")
        .and_then(|e| e.as_array())
        .cloned()
        .or_else(|| v.as_array().cloned())
        .unwrap_or_default();
    rows.into_iter()
        .filter(|e| e["action"] == "session.ended")
        .collect()
}

/// An audit event's detail as JSON (the API gives it as an object or as text).
pub fn detail(e: &Value) -> Value {
    match &e["detail"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// The lines of an asciicast file: header, then events.
pub fn cast(path: &Path) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or(Value::Null));
    let header = lines.next().unwrap_or(Value::Null);
    (header, lines.collect())
}

/// The concatenated output (`o` events) of an asciicast file.
pub fn cast_output(path: &Path) -> String {
    cast(path)
        .1
        .iter()
        .filter(|e| e[1] == "o")
        .filter_map(|e| e[2].as_str().map(str::to_string))
        .collect()
}

/// The labels of the markers (`m` events) of an asciicast file.
pub fn cast_markers(path: &Path) -> Vec<String> {
    cast(path)
        .1
        .iter()
        .filter(|e| e[1] == "m")
        .filter_map(|e| e[2].as_str().map(str::to_string))
        .collect()
}

pub fn sha256_hex(path: &Path) -> String {
    let data = std::fs::read(path).unwrap_or_default();
    hex::encode(jitgate::secrets::sha256(&data))
}
