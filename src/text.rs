//! Text that came from a user (reasons, comments, names, audit details, log
//! field values) shown in a terminal or a line-oriented log. Control bytes in
//! such text can move the cursor, rewrite what was already printed (`\r`,
//! CSI, OSC), ring the bell or forge whole log lines (`\n`); bidi overrides
//! reorder what the reader sees; line and paragraph separators break a line
//! for some readers and not others; zero-width characters make two names
//! that differ look the same. [`escape`] makes all of them visible instead,
//! so what is printed is what was stored. [`escape_json`] does the same for
//! JSON text, which stays valid JSON with the same value.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal or a log line raw: C0 controls
/// (tab and newline included), DEL, C1 controls U+0080–U+009F, the Unicode
/// bidi marks, embeddings, overrides and isolates (U+061C, U+200E–U+200F,
/// U+202A–U+202E, U+2066–U+2069), the line and paragraph separators
/// U+2028–U+2029, and the invisible U+00AD, U+115F–U+1160, U+180E,
/// U+200B–U+200D, U+2060–U+2064, U+3164, U+FEFF, U+FFA0, U+FFF9–U+FFFB
/// and the tag characters U+E0000–U+E007F. Zero-width joiners are
/// legitimate in some scripts and emoji; in names and reasons read by an
/// approver, seeing them beats being fooled.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{ad}'
            | '\u{61c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// `s` with every [`is_unsafe`] character written visibly: `\n`, `\r`, `\t`
/// as such, everything else as `\u{..}` (ESC is `\u{1b}`). Borrowed when
/// there is nothing to escape. Idempotent: the output has no unsafe
/// character left. Backslashes are left alone, so ordinary text (paths,
/// regexes) reads as typed.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text (as serde_json writes it) with every [`is_unsafe`] character
/// from DEL up written as a `\uXXXX` escape. serde_json escapes C0 controls
/// inside strings but not DEL, C1 controls or bidi overrides, which would
/// reach the terminal raw; the C0 characters left are the layout between
/// tokens. Characters from DEL up stand only inside JSON strings, so the
/// result is valid JSON with the same value. A character past the BMP is
/// written as its UTF-16 surrogate pair, as JSON requires.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let unsafe_in_string = |c: char| c >= '\x7f' && is_unsafe(c);
    if !json.chars().any(unsafe_in_string) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unsafe_in_string(c) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_become_visible() {
        assert_eq!(escape("plain ü 日本"), "plain ü 日本");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape("\x1b[2J\x07\0\x7f"), "\\u{1b}[2J\\u{7}\\u{0}\\u{7f}");
        assert_eq!(escape("\u{9b}31m\u{85}"), "\\u{9b}31m\\u{85}");
        assert_eq!(
            escape("\u{202e}gpj.exe\u{2066}"),
            "\\u{202e}gpj.exe\\u{2066}"
        );
        assert_eq!(
            escape("da\u{200b}ve\u{2028}x\u{feff}\u{61c}"),
            "da\\u{200b}ve\\u{2028}x\\u{feff}\\u{61c}"
        );
        // Just outside the ranges: kept.
        assert_eq!(escape("\u{a0}\u{2027}\u{206a}"), "\u{a0}\u{2027}\u{206a}");
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_unsafe_characters() {
        let v = serde_json::json!({"reason": "a\u{9b}31m\u{202e}b\u{2028}\n\u{1b}\u{ad}\u{e0001}1", "n": 1});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = escape_json(&text);
        // Every unsafe character survives the round trip, the one past the
        // BMP (a tag character) included.
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn output_is_safe_and_escaping_is_idempotent() {
        for c in (0u32..=0x10ffff).filter_map(char::from_u32) {
            let s = format!("x{c}y");
            let e = escape(&s).into_owned();
            assert!(!e.chars().any(is_unsafe), "{c:?} -> {e:?}");
            assert_eq!(escape(&e), e);
        }
    }
}
