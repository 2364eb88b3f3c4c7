//! The one duration syntax of jitgate (CLI `--for`, API `duration`, config):
//! one or more `<number><unit>` parts with unit `s`, `m`, `h` or `d`, such as
//! `90s`, `30m`, `1h30m`, `2d`; `ms` too, for sub-second retry backoff.
//! Nothing else, and units are lowercase: humantime also read `M` as months
//! and `y` as years, so `--for 30M` silently asked for 30 months.
//! A rejected input comes with a suggestion when one is obvious.

use std::time::Duration;

/// Why a duration was refused, phrased for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {problem}{}", hint(.suggestion))]
pub struct DurationError {
    pub input: String,
    pub problem: String,
    /// A valid spelling of what was probably meant.
    pub suggestion: Option<String>,
}

fn hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => " (use s, m, h or d, as in 90s, 30m, 1h30m, 2d)".into(),
    }
}

/// Parses `s` (surrounding whitespace and spaces between parts allowed).
/// Zero is a valid result here; callers that need more say so.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let fail = |problem: String| DurationError {
        input: s.to_string(),
        problem,
        suggestion: suggest(s),
    };
    let parts = split(s).map_err(fail)?;
    let mut total_ms: u64 = 0;
    for (n, unit) in parts {
        let ms = match unit {
            "ms" => Some(1),
            "s" => Some(1000),
            "m" => Some(60_000),
            "h" => Some(3_600_000),
            "d" => Some(86_400_000),
            "" => return Err(fail(format!("{n} has no unit"))),
            u => return Err(fail(format!("unknown unit {u:?}"))),
        };
        total_ms = ms
            .and_then(|k| n.checked_mul(k))
            .and_then(|x| total_ms.checked_add(x))
            .ok_or_else(|| fail("too large".into()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// `(number, unit)` pairs, the unit being whatever letters follow the number.
fn split(s: &str) -> Result<Vec<(u64, &str)>, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty".into());
    }
    let mut out = Vec::new();
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err("expected a number".into());
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "too large".to_string())?;
        rest = rest[digits..].trim_start();
        let letters = rest.len() - rest.trim_start_matches(|c: char| c.is_alphabetic()).len();
        out.push((n, &rest[..letters]));
        rest = rest[letters..].trim_start();
    }
    Ok(out)
}

/// The accepted spelling of a near miss: `30M` → `30m`, `2hours` → `2h`,
/// `1w` → `7d`, `30` → `30m`... or `None` when nothing is obvious.
fn suggest(s: &str) -> Option<String> {
    let parts = split(s).ok()?;
    let mut out = String::new();
    for (n, unit) in parts {
        let (n, u) = match unit.to_ascii_lowercase().as_str() {
            "" if parts_len(s) == 1 => (n, "m"),
            "ms" | "msec" | "msecs" | "millis" => (n, "ms"),
            "s" | "sec" | "secs" | "second" | "seconds" => (n, "s"),
            "m" | "min" | "mins" | "minute" | "minutes" => (n, "m"),
            "h" | "hr" | "hrs" | "hour" | "hours" => (n, "h"),
            "d" | "day" | "days" => (n, "d"),
            "w" | "week" | "weeks" => (n.checked_mul(7)?, "d"),
            _ => return None,
        };
        out.push_str(&format!("{n}{u}"));
    }
    (out != s && parse_strict(&out)).then_some(out)
}

fn parts_len(s: &str) -> usize {
    split(s).map(|p| p.len()).unwrap_or(0)
}

fn parse_strict(s: &str) -> bool {
    split(s).is_ok_and(|p| {
        p.iter()
            .all(|(_, u)| matches!(*u, "ms" | "s" | "m" | "h" | "d"))
    })
}

/// For clap: keeps the text as typed once it is known to parse, so the
/// server sees what the user wrote; a bad one is a usage error (exit 2).
pub fn validate_arg(s: &str) -> Result<String, DurationError> {
    parse(s).map(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        parse(s)
            .map(|d| d.as_secs())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn accepts_s_m_h_d_and_combinations() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("30m"), 1800);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("1h 30m"), 5400);
        assert_eq!(secs(" 2d "), 172_800);
        assert_eq!(secs("0s"), 0);
        assert_eq!(parse("1s500ms").map(|d| d.as_millis()), Ok(1500));
    }

    #[test]
    fn rejects_everything_else_with_a_hint() {
        for (bad, want) in [
            ("30M", Some("30m")),
            ("2H", Some("2h")),
            ("30min", Some("30m")),
            ("2 hours", Some("2h")),
            ("1w", Some("7d")),
            ("100MS", Some("100ms")),
            ("30", Some("30m")),
            ("1y", None),
            ("1mo", None),
            ("soon", None),
            ("", None),
            ("-5m", None),
            ("1.5h", None),
            ("99999999999999999999s", None),
            ("999999999999999999d", None),
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.suggestion.as_deref(), want, "{bad}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            match want {
                Some(w) => assert!(msg.contains(&format!("did you mean {w}?")), "{msg}"),
                None => assert!(msg.contains("use s, m, h or d"), "{msg}"),
            }
        }
    }
}
