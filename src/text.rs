//! Text that came from a user (reasons, comments, names, audit details, log
//! field values) shown in a terminal or a line-oriented log. Control bytes in
//! such text can move the cursor, rewrite what was already printed (`\r`,
//! CSI, OSC), ring the bell or forge whole log lines (`\n`); bidi overrides
//! reorder what the reader sees. [`escape`] makes all of them visible
//! instead, so what is printed is what was stored.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal or a log line raw: C0 controls
/// (tab and newline included), DEL, C1 controls U+0080–U+009F, and the
/// Unicode bidi embeddings/overrides/isolates U+202A–U+202E, U+2066–U+2069.
pub fn is_unsafe(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
        // Just outside the ranges: kept.
        assert_eq!(escape("\u{a0}\u{2029}\u{206a}"), "\u{a0}\u{2029}\u{206a}");
    }

    #[test]
    fn output_is_safe_and_escaping_is_idempotent() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let s = format!("x{c}y");
            let e = escape(&s).into_owned();
            assert!(!e.chars().any(is_unsafe), "{c:?} -> {e:?}");
            assert_eq!(escape(&e), e);
        }
    }
}
