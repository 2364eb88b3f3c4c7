//! `jitgate recordings`, `jitgate play SESSION_ID [--speed N]` and
//! `jitgate watch SESSION_ID`.
//!
//! A terminal recording is replayed as the engineer's terminal showed it:
//! its output bytes go to this terminal unchanged (that is what replaying
//! means), so play and watch only in a terminal you would trust with the
//! target's output. Statement recordings are printed as escaped text.

use super::api::Api;
use super::format::{enc, list, query, s};
use http_body_util::BodyExt;
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The longest pause replayed: an idle terminal is skipped through.
const MAX_PAUSE: Duration = Duration::from_secs(2);

pub async fn list_recordings(
    api: &Api,
    as_json: bool,
    user: Option<String>,
    target: Option<String>,
) -> anyhow::Result<ExitCode> {
    let r = api
        .get(&format!(
            "/v1/recordings{}",
            query(&[("user", user), ("target", target)])
        ))
        .await?;
    list(
        as_json,
        &r,
        "recordings",
        &[
            "ID", "USER", "TARGET", "KIND", "STARTED", "ENDED", "BYTES", "INSTANCE",
        ],
        |e| {
            [
                "id",
                "user",
                "target",
                "kind",
                "started_at",
                "ended_at",
                "bytes",
                "instance",
            ]
            .iter()
            .map(|k| s(&e[*k]))
            .collect()
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One line of a statement recording, for the terminal.
fn statement_line(v: &Value) -> String {
    let state = v["sqlstate"]
        .as_str()
        .map(|c| format!(" ERROR {c}"))
        .unwrap_or_default();
    let rows = v["rows"]
        .as_u64()
        .map(|n| format!(" rows={n}"))
        .unwrap_or_default();
    format!(
        "{} {}ms{rows}{state}  {}",
        s(&v["at"]),
        v["duration_ms"].as_f64().unwrap_or(0.0),
        crate::text::escape(v["statement"].as_str().unwrap_or(""))
    )
}

/// Writes one asciicast or statement line; returns its time (asciicast).
fn show_line(line: &str, out: &mut impl Write) -> anyhow::Result<Option<f64>> {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Ok(None);
    };
    // A statement recording's marker (statements it could not record).
    if let Some(m) = v.get("marker").and_then(Value::as_str) {
        writeln!(out, "{} [jitgate: {}]", s(&v["at"]), crate::text::escape(m))?;
        return Ok(None);
    }
    if v.is_object() && v.get("statement").is_some() {
        writeln!(out, "{}", statement_line(&v))?;
        return Ok(None);
    }
    if let Some(e) = v.as_array() {
        let t = e.first().and_then(Value::as_f64);
        match (
            e.get(1).and_then(Value::as_str),
            e.get(2).and_then(Value::as_str),
        ) {
            (Some("o"), Some(text)) => out.write_all(text.as_bytes())?,
            (Some("m"), Some(label)) => {
                write!(out, "\r\n[jitgate: {}]\r\n", crate::text::escape(label))?
            }
            _ => {}
        }
        return Ok(t);
    }
    Ok(None)
}

pub async fn play(api: &Api, session: &str, speed: f64) -> anyhow::Result<ExitCode> {
    if !(speed.is_finite() && speed > 0.0) {
        anyhow::bail!("--speed must be a positive number");
    }
    let body = api
        .get_stream(&format!("/v1/sessions/{}/recording", enc(session)))
        .await?
        .collect()
        .await?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    let mut out = std::io::stdout().lock();
    let mut last = 0.0f64;
    for line in text.lines() {
        let t = match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.as_array()?.first()?.as_f64())
        {
            Some(t) => t,
            None => last,
        };
        let pause =
            Duration::from_secs_f64(((t - last).max(0.0) / speed).min(3600.0)).min(MAX_PAUSE);
        if !pause.is_zero() {
            out.flush()?;
            tokio::time::sleep(pause).await;
        }
        last = t;
        show_line(line, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Follows a live session until its `end` event.
pub async fn watch(api: &Api, session: &str) -> anyhow::Result<ExitCode> {
    let mut body = api
        .get_stream(&format!("/v1/sessions/{}/live", enc(session)))
        .await?;
    let mut pending: Vec<u8> = Vec::new();
    let mut event: Option<String> = None;
    let mut out = std::io::stdout();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(name) = line.strip_prefix("event: ") {
                event = Some(name.to_string());
            } else if let Some(data) = line.strip_prefix("data: ") {
                match event.take().as_deref() {
                    Some("end") => {
                        out.flush()?;
                        eprintln!("\r\njitgate: the session ended");
                        return Ok(ExitCode::SUCCESS);
                    }
                    Some("dropped") => {
                        eprintln!("\r\njitgate: this watcher fell behind and was dropped");
                        return Ok(ExitCode::from(1));
                    }
                    _ => {
                        let mut lock = out.lock();
                        show_line(data, &mut lock)?;
                        lock.flush()?;
                    }
                }
            }
        }
    }
    eprintln!("\r\njitgate: the stream closed before the session ended");
    Ok(ExitCode::from(1))
}

/// What `audit --verify` found for the recordings the chain seals.
pub struct RecordingCheck {
    pub checked: usize,
    /// Deleted by retention (a `recording.deleted` event).
    pub deleted: usize,
    pub altered: Vec<String>,
    pub missing: Vec<String>,
    /// Could not be fetched for another reason (no access, an error).
    pub unchecked: Vec<(String, String)>,
}

impl RecordingCheck {
    pub fn ok(&self) -> bool {
        self.altered.is_empty() && self.missing.is_empty() && self.unchecked.is_empty()
    }

    pub fn json(&self) -> Value {
        serde_json::json!({
            "checked": self.checked, "deleted": self.deleted, "altered": self.altered,
            "missing": self.missing,
            "unchecked": self.unchecked.iter().map(|(id, why)| serde_json::json!({"id": id, "error": why})).collect::<Vec<_>>(),
        })
    }

    pub fn lines(&self) -> Vec<String> {
        if self.checked + self.deleted == 0 {
            return Vec::new();
        }
        let mut v = vec![format!(
            "recordings: {} match their sealed digest, {} deleted by retention, {} altered, {} missing",
            self.checked - self.altered.len(),
            self.deleted,
            self.altered.len(),
            self.missing.len()
        )];
        v.extend(
            self.altered
                .iter()
                .map(|id| format!("recording ALTERED: session {id}")),
        );
        v.extend(
            self.missing
                .iter()
                .map(|id| format!("recording MISSING: session {id}")),
        );
        v.extend(self.unchecked.iter().map(|(id, why)| {
            format!(
                "recording NOT CHECKED: session {id}: {}",
                crate::text::escape(why)
            )
        }));
        v
    }
}

/// Fetches each recording a verified `session.ended` event seals and
/// compares its SHA-256, computed here, with the sealed one.
pub async fn verify_recordings(
    api: &Api,
    records: &[crate::audit::AuditRecord],
) -> anyhow::Result<RecordingCheck> {
    use sha2::{Digest, Sha256};
    let deleted: std::collections::HashSet<&str> = records
        .iter()
        .filter(|r| r.action == "recording.deleted")
        .map(|r| r.subject.as_str())
        .collect();
    let mut c = RecordingCheck {
        checked: 0,
        deleted: 0,
        altered: Vec::new(),
        missing: Vec::new(),
        unchecked: Vec::new(),
    };
    for r in records.iter().filter(|r| r.action == "session.ended") {
        let detail: Value = serde_json::from_str(&r.detail).unwrap_or(Value::Null);
        let Some(sealed) = detail["recording_sha256"].as_str() else {
            continue;
        };
        let id = r.subject.clone();
        if deleted.contains(id.as_str()) {
            c.deleted += 1;
            continue;
        }
        c.checked += 1;
        let mut body = match api
            .get_stream(&format!("/v1/sessions/{}/recording", enc(&id)))
            .await
        {
            Ok(b) => b,
            Err(e) => {
                match e.downcast_ref::<super::api::ApiFailure>() {
                    Some(f) if f.status == hyper::StatusCode::NOT_FOUND => c.missing.push(id),
                    _ => c.unchecked.push((id, e.to_string())),
                }
                continue;
            }
        };
        let mut h = Sha256::new();
        while let Some(frame) = body.frame().await {
            if let Ok(d) = frame?.into_data() {
                h.update(&d);
            }
        }
        if hex::encode(h.finalize()) != sealed {
            c.altered.push(id);
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    /// A statement recording's marker is shown, escaped.
    #[test]
    fn a_marker_line_is_shown() {
        let mut out = Vec::new();
        let line = r#"{"at":"2026-01-01T00:00:00.000Z","marker":"5 not recorded\u001b[2J","not_recorded":5}"#;
        super::show_line(line, &mut out).unwrap();
        let shown = String::from_utf8(out).unwrap();
        assert!(shown.contains("[jitgate: 5 not recorded"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }
}
