//! `--log-format json`: one flat JSON object per line, for SIEM ingestion.
//!
//! The stock tracing-subscriber JSON format puts the module path under
//! `target` and nests span fields under `span`; jitgate's own `target` field
//! (the target's name) then collides with the module path and the session's
//! identity sits one level down. Here every line is one flat object:
//! `timestamp`, `level`, `module`, `message`, the event's fields, then the
//! fields of every enclosing span (innermost first; a key already present is
//! kept). So each line logged inside a session carries `session_id`, `user`
//! and `target` at the top level. docs/operations.md lists the fields.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span's fields as JSON values, kept in the span's extensions and
/// updated when fields are recorded after creation (`Span::record`).
struct Fields(Map<String, Value>);

struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().to_string(), Value::from(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().to_string(), Value::from(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().to_string(), Value::from(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().to_string(), Value::from(v));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.0.insert(f.name().to_string(), Value::from(v));
    }
    fn record_error(&mut self, f: &Field, v: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(f.name().to_string(), Value::from(v.to_string()));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0
            .insert(f.name().to_string(), Value::from(format!("{v:?}")));
    }
}

/// Keeps [`Fields`] for every span.
pub struct SpanFields;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut m = Map::new();
        attrs.record(&mut Collect(&mut m));
        span.extensions_mut().insert(Fields(m));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(Fields(m)) = ext.get_mut::<Fields>() {
            values.record(&mut Collect(m));
        }
    }
}

/// Formats each event as one flat JSON object (see the module doc).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut m = Map::new();
        m.insert(
            "timestamp".into(),
            Value::from(humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()),
        );
        m.insert("level".into(), Value::from(meta.level().as_str()));
        m.insert("module".into(), Value::from(meta.target()));
        event.record(&mut Collect(&mut m));
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if let Some(Fields(f)) = span.extensions().get::<Fields>() {
                    for (k, v) in f {
                        // A declared but never recorded field is absent, not null.
                        if !m.contains_key(k) {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
        }
        // C1 controls and bidi overrides in a field would reach whoever
        // tails the log in a terminal; as JSON escapes they keep their value.
        let line = Value::Object(m).to_string();
        writeln!(w, "{}", crate::text::escape_json(&line))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_per_event_with_no_raw_control_or_bidi_character() {
        let target = "db\x1b]0;pwned\x07\r\u{9b}2J\u{202e}\u{2028}";
        let out = super::super::captured(
            |buf| super::super::json_subscriber(tracing_subscriber::EnvFilter::new("trace"), buf),
            || {
                let span = tracing::info_span!("session", target = %target);
                let _g = span.enter();
                tracing::warn!(user = "x\ny", "no such user");
            },
        );
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            !out.chars().any(|c| c != '\n' && crate::text::is_unsafe(c)),
            "{out:?}"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        assert_eq!(v["target"], target, "{v}");
        assert_eq!(v["user"], "x\ny", "{v}");
    }
}
