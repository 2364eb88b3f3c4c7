//! asciicast v2 lines: the header, and `o` (output), `r` (resize) and `m`
//! (marker) events, each one JSON line. Output is split at arbitrary byte
//! boundaries by the relay; `Utf8Carry` keeps an incomplete UTF-8 sequence
//! for the next chunk so a character is never torn into two U+FFFD.

use serde_json::json;

/// The header line: terminal size, start time, and the command and TERM
/// when known.
pub fn header(
    width: u32,
    height: u32,
    term: Option<&str>,
    command: Option<&str>,
    started_at_ms: i64,
) -> Vec<u8> {
    let mut h = json!({
        "version": 2,
        "width": width.clamp(1, 10_000),
        "height": height.clamp(1, 10_000),
        "timestamp": started_at_ms / 1000,
    });
    if let Some(t) = term {
        h["env"] = json!({ "TERM": t });
    }
    if let Some(c) = command {
        h["command"] = json!(c);
    }
    line(&h)
}

fn line(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    out
}

pub fn output(t: f64, text: &str) -> Vec<u8> {
    line(&json!([round(t), "o", text]))
}

pub fn resize(t: f64, width: u32, height: u32) -> Vec<u8> {
    line(&json!([round(t), "r", format!("{width}x{height}")]))
}

pub fn marker(t: f64, label: &str) -> Vec<u8> {
    line(&json!([round(t), "m", label]))
}

/// Microsecond precision, as asciinema writes.
fn round(t: f64) -> f64 {
    (t * 1e6).round() / 1e6
}

/// Turns a byte stream into text chunk by chunk (see the module doc).
#[derive(Default)]
pub struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    pub fn feed(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(data);
        let mut out = String::with_capacity(bytes.len());
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (ok, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &bad[n..];
                        }
                        None => {
                            // An incomplete sequence at the end: kept.
                            self.pending = bad.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_chunks_is_kept_whole() {
        let mut c = Utf8Carry::default();
        let bytes = "é€".as_bytes();
        let mut got = String::new();
        for b in bytes {
            got.push_str(&c.feed(&[*b]));
        }
        assert_eq!(got, "é€");
        assert_eq!(c.feed(b"\xffa"), "\u{FFFD}a");
    }

    #[test]
    fn events_are_json_lines() {
        let l = output(1.5, "a\"b\r\n");
        let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v, json!([1.5, "o", "a\"b\r\n"]));
        assert!(l.ends_with(b"\n"));
        let h: serde_json::Value =
            serde_json::from_slice(&header(100, 30, Some("xterm"), None, 5000)).unwrap();
        assert_eq!(h["version"], 2);
        assert_eq!(h["width"], 100);
        assert_eq!(h["env"]["TERM"], "xterm");
    }
}
