//! Field formatting for the human log format. The stock formatter writes
//! `%`-recorded values and the message raw, so a user name or a PostgreSQL
//! startup parameter carrying `\n` could end the line and start a forged one,
//! and ESC bytes reached the operator's terminal. Here every value and the
//! message pass through [`crate::text::escape`], whatever the call site.
//! Span fields (e.g. `target=`) are formatted by the same code.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;

/// `message key=value ...` with every piece escaped.
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            w: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_, '_> {
    fn put(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Fields bridged from the `log` crate carry metadata, not content.
        if name.starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        let value = crate::text::escape(value);
        self.result = if name == "message" {
            write!(self.w, "{sep}{value}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.w, "{sep}{name}={value}")
        };
    }
}

impl Visit for Visitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.put(field, value)
        } else {
            // Quoted like the stock formatter (Debug already escapes most
            // controls; escape() catches C1 and bidi characters).
            self.put(field, &format!("{value:?}"))
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, &value.to_string())
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, &format!("{value:?}"))
    }
}

#[cfg(test)]
mod tests {
    /// What the human format prints for events logged by `f`.
    fn logged(f: impl FnOnce()) -> String {
        super::super::captured(
            |buf| {
                super::super::human_subscriber(
                    tracing_subscriber::EnvFilter::new("trace"),
                    buf,
                    false,
                )
            },
            f,
        )
    }

    #[test]
    fn input_cannot_forge_a_line_or_reach_the_terminal() {
        let user = "x@nosuch\n2026-01-01T00:00:00Z  INFO grant revoked by=dave";
        let target = "db\x1b]0;pwned\x07\r\u{9b}2J\u{202e}";
        let out = logged(|| {
            let span = tracing::info_span!("session", target = %target);
            let _g = span.enter();
            tracing::warn!(user = %user, detail = ?target, name = user, "no such user {user}");
            tracing::info!(
                error = &std::io::Error::other("bad\nline") as &dyn std::error::Error,
                "x"
            );
        });
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            !out.chars().any(|c| c != '\n' && crate::text::is_unsafe(c)),
            "{out:?}"
        );
        assert!(out.contains("user=x@nosuch\\n2026"), "{out}");
        assert!(out.contains("no such user x@nosuch\\n2026"), "{out}");
        assert!(
            out.contains("target=db\\u{1b}]0;pwned\\u{7}\\r\\u{9b}2J\\u{202e}"),
            "{out}"
        );
        assert!(out.contains("error=bad\\nline"), "{out}");
        assert!(out.contains(r#"name="x@nosuch\n2026"#), "{out}");
    }
}
