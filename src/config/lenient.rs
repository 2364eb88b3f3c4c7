//! The lenient first pass: reads the TOML into a plain tree, reports and
//! removes every unknown key and every value of the wrong type (each with
//! its path), and builds the `FileConfig` from what is left, so validation
//! still runs and one `check-config` lists every problem in the file.
//!
//! Syntax errors (and duplicate keys) stop here: without a tree there is
//! nothing to walk.

use super::locate::{Path, Seg};
use super::model::{self, FileConfig};
use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// One structural problem. `at_key`: the key itself is wrong (unknown), so it
/// is located at the key's name rather than its value.
pub struct Structural {
    pub path: Path,
    pub message: String,
    pub at_key: bool,
}

/// A defensive bound on removals per section; each round removes one key,
/// so the loop ends anyway once the section is empty.
const MAX_ROUNDS: usize = 256;

pub fn read(text: &str) -> Result<(FileConfig, Vec<Structural>), toml::de::Error> {
    let mut root: Table = toml::from_str(text)?;
    let mut found = Vec::new();
    strip_unknown(&mut root, "", &mut Vec::new(), &mut found);
    let mut r = Reader {
        root,
        found: &mut found,
    };
    let file = FileConfig {
        server: r.section("server").unwrap_or_default(),
        store: r.section("store").unwrap_or_default(),
        admin: r.section("admin").unwrap_or_default(),
        metrics: r.section("metrics"),
        audit: r.section("audit").unwrap_or_default(),
        auth: r.section("auth").unwrap_or_default(),
        recording: r.section("recording"),
        listeners: r.section("listeners").unwrap_or_default(),
        groups: r.section("groups").unwrap_or_default(),
        users: r.entries("users"),
        targets: r.entries("targets"),
        policies: r.entries("policies"),
        notify: r.entries("notify"),
    };
    Ok((file, found))
}

fn known(section: &str) -> Option<&'static [&'static str]> {
    model::SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, keys)| *keys)
}

fn child(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// Removes the keys `model::SECTIONS` does not list for the table's section,
/// recursing into known sub-tables and arrays of tables.
fn strip_unknown(table: &mut Table, section: &str, path: &mut Path, found: &mut Vec<Structural>) {
    let Some(keys) = known(section) else {
        return;
    };
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !keys.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        let mut at = path.clone();
        at.push(Seg::Key(key.clone()));
        let expected: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        let place = if section.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{section}]")
        };
        found.push(Structural {
            path: at,
            message: format!(
                "unknown key `{key}` {place}, expected one of {}",
                expected.join(", ")
            ),
            at_key: true,
        });
    }
    for (key, value) in table.iter_mut() {
        let sub = child(section, key);
        path.push(Seg::Key(key.clone()));
        match value {
            Value::Table(t) => strip_unknown(t, &sub, path, found),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Table(t) = item {
                        path.push(Seg::Index(i));
                        strip_unknown(t, &sub, path, found);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

struct Reader<'a> {
    root: Table,
    found: &'a mut Vec<Structural>,
}

impl Reader<'_> {
    fn section<T: DeserializeOwned>(&mut self, name: &str) -> Option<T> {
        let value = self.root.remove(name)?;
        lenient(value, vec![Seg::Key(name.to_string())], self.found)
    }

    /// Each entry of an array of tables on its own, so one bad entry does
    /// not hide the others.
    fn entries<T: DeserializeOwned>(&mut self, name: &str) -> Vec<T> {
        let base = vec![Seg::Key(name.to_string())];
        match self.root.remove(name) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let mut at = base.clone();
                    at.push(Seg::Index(i));
                    lenient(item, at, self.found)
                })
                .collect(),
            Some(other) => {
                self.found.push(Structural {
                    path: base,
                    message: format!(
                        "expected an array of tables ([[{name}]]), found {}",
                        other.type_str()
                    ),
                    at_key: false,
                });
                Vec::new()
            }
        }
    }
}

/// What a deserialization error says: its first line, and the dotted key
/// path toml appends as "in `a.b`" (relative to the value deserialized).
fn split_error(e: &toml::de::Error) -> (String, Vec<String>) {
    // Display, unlike message(), carries the key path.
    let text = e.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().trim().to_string();
    let within = lines
        .find_map(|l| l.trim().strip_prefix("in `")?.strip_suffix('`'))
        .map(|p| p.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    (first, within)
}

/// The name in a "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Removes `path` (keys below `value`); false when it is not there.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = value;
    for key in parents {
        match cur.as_table_mut().and_then(|t| t.get_mut(key)) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.as_table_mut().and_then(|t| t.remove(last)).is_some()
}

/// Deserializes `value`, reporting each wrong value and dropping it until
/// the rest deserializes. A required key that was dropped (or is missing)
/// drops the table holding it; its error has been reported already.
fn lenient<T: DeserializeOwned>(
    mut value: Value,
    base: Path,
    found: &mut Vec<Structural>,
) -> Option<T> {
    let mut dropped: Vec<Vec<String>> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let e = match value.clone().try_into::<T>() {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        let (message, within) = split_error(&e);
        let mut at = base.clone();
        at.extend(within.iter().cloned().map(Seg::Key));
        if let Some(field) = missing_field(&message) {
            let mut full = within.clone();
            full.push(field.to_string());
            if !dropped.contains(&full) {
                found.push(Structural {
                    path: at,
                    message: message.clone(),
                    at_key: false,
                });
            }
            // Drop the table that lacks it; at the top, the whole value.
            if within.is_empty() || !remove(&mut value, &within) {
                return None;
            }
            dropped.push(within);
            continue;
        }
        found.push(Structural {
            path: at,
            message,
            at_key: false,
        });
        if within.is_empty() || !remove(&mut value, &within) {
            return None;
        }
        dropped.push(within);
    }
    None
}
