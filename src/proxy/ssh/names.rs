//! Names a client chooses (the SSH user name before authentication, the
//! host of a direct-tcpip open) end up in logs, audit subjects and refusal
//! lines. They are bounded and made printable here, at the source, before
//! any of that: an ESC or CR in a user name must not reach an operator's
//! terminal, and a 30 KB name must not fill the audit.
//!
//! The result is still safe to look up: a valid target or user name
//! (`[a-z0-9][a-z0-9._-]{0,62}`) comes back unchanged, and a changed one
//! carries `?` or `…`, which no valid name contains, so it can never match.

/// Longest name kept, in characters.
pub const MAX_NAME: usize = 64;

/// `s` with control characters (and other non-printing ones such as
/// bidirectional overrides) replaced by `?`, cut to MAX_NAME characters with
/// a `…` marking the cut.
pub fn bounded(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_NAME)
        .map(|c| if printable(c) { c } else { '?' })
        .collect();
    if s.chars().nth(MAX_NAME).is_some() {
        out.push('…');
    }
    out
}

fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_pass_and_hostile_ones_are_bounded() {
        assert_eq!(bounded("prod-web"), "prod-web");
        let longest = "a".repeat(63);
        assert_eq!(bounded(&longest), longest);
        assert_eq!(bounded("a\x1b[2Jb\r\nc"), "a?[2Jb??c");
        assert_eq!(bounded("x\u{202e}y"), "x?y");
        let long = bounded(&"z".repeat(30_000));
        assert_eq!(long.chars().count(), MAX_NAME + 1);
        assert!(long.ends_with('…'));
    }
}
