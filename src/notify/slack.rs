//! `format = "slack"`: the queued event rendered as Slack's incoming-webhook
//! JSON, a `text` summary (what notifications and Mattermost show) and
//! Block Kit `blocks` (a header, a section with the requester, target,
//! duration and reason, and a link to the console).
//!
//! Rendered at delivery from the stored jitgate body, so every attempt
//! sends (and signs) the same bytes. User text (reasons, comments) is
//! escaped for mrkdwn (`&`, `<`, `>`), so a reason cannot post a link or an
//! `<!channel>` mention, and every text is cut to Block Kit's limits.

use serde_json::{json, Value};

/// Block Kit limits (api.slack.com/reference/block-kit/blocks).
const HEADER_MAX: usize = 150;
const SECTION_TEXT_MAX: usize = 3000;
const FIELD_MAX: usize = 2000;
/// Slack truncates long `text` and advises keeping messages short.
const TEXT_MAX: usize = 3000;

/// The Slack body for a stored jitgate event body; `console` is the
/// console's public URL.
pub fn render(body: &str, console: &str) -> String {
    let e: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let event = e["event"].as_str().unwrap_or("event");
    let str_of = |k: &str| e[k].as_str().map(str::to_string);
    let user = str_of("user").unwrap_or_default();
    let target = str_of("target").unwrap_or_default();
    let actor = str_of("actor").unwrap_or_default();
    let duration = e["duration_seconds"]
        .as_i64()
        .or_else(|| e["added_seconds"].as_i64())
        .map(|s| {
            humantime::format_duration(std::time::Duration::from_secs(s.max(0) as u64)).to_string()
        });
    let reason = str_of("reason");
    let (title, summary) = describe(event, &e, &user, &target, &actor);
    let mut fields = Vec::new();
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            fields.push(json!({"type": "mrkdwn", "text": cut(&format!("*{name}*\n{}", esc(&v)), FIELD_MAX)}));
        }
    };
    field("Requester", Some(user.clone()));
    field("Target", Some(target.clone()));
    field("Duration", duration.clone());
    field("Reason", reason.clone());
    if event == "grant.reviewed" {
        field("Verdict", str_of("verdict"));
        field("Comment", str_of("comment"));
    }
    if let Some(until) = str_of("expires_at") {
        field("Until", Some(until));
    }
    let mut text = format!("jitgate: {summary}");
    if let Some(r) = &reason {
        text.push_str(&format!(" ({})", r));
    }
    let console = console.trim_end_matches('/');
    let blocks = json!([
        {"type": "header", "text": {"type": "plain_text", "text": cut(&title, HEADER_MAX), "emoji": true}},
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(&esc(&summary), SECTION_TEXT_MAX)}, "fields": fields},
        {"type": "context", "elements": [
            {"type": "mrkdwn", "text": cut(&format!("<{}/|Open the jitgate console> · {}", esc(console), esc(event)), FIELD_MAX)}
        ]}
    ]);
    json!({"text": cut(&esc(&text), TEXT_MAX), "blocks": blocks}).to_string()
}

/// The header and one-line summary of an event.
fn describe(event: &str, e: &Value, user: &str, target: &str, actor: &str) -> (String, String) {
    let until = e["expires_at"].as_str().unwrap_or_default();
    match event {
        "request.created" => ("Access requested".into(), format!("{user} requests access to {target}")),
        "request.approved" => ("Access approved".into(), format!("{user} has access to {target} until {until} (approved by {actor})")),
        "request.denied" => ("Access denied".into(), format!("{actor} denied {user} access to {target}")),
        "grant.expiring" => ("Access ending soon".into(), format!("{user}'s access to {target} ends at {until}")),
        "grant.ended" => ("Access ended".into(), format!("{user}'s access to {target} ended ({})", e["end_reason"].as_str().unwrap_or("ended"))),
        "grant.extended" => ("Access extended".into(), format!("{user}'s access to {target} was extended until {until} (by {actor})")),
        "grant.break_glass" => (":rotating_light: Break-glass access".into(), format!("{user} took break-glass access to {target} until {until}; an approver must review it")),
        "grant.reviewed" => ("Break-glass access reviewed".into(), format!("{actor} reviewed {user}'s break-glass access to {target}: {}", e["verdict"].as_str().unwrap_or("?"))),
        "session.ended" => ("Session ended".into(), format!("{user}'s session to {target} ended ({})", e["end_reason"].as_str().unwrap_or("ended"))),
        "user.locked" => ("User locked".into(), format!("{actor} locked {user}")),
        other => ("jitgate".into(), other.to_string()),
    }
}

/// mrkdwn's three control characters.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_mention_or_link_and_limits_hold() {
        let body = json!({"event": "request.created", "user": "alice", "target": "db", "reason": format!("<!channel> <https://evil|x> {}", "y".repeat(5000)), "duration_seconds": 1800}).to_string();
        let v: Value = serde_json::from_str(&render(&body, "https://j.example/")).unwrap();
        let all = v.to_string();
        assert!(
            !all.contains("<!channel>") && !all.contains("<https://evil"),
            "{all}"
        );
        for f in v["blocks"][1]["fields"].as_array().unwrap() {
            assert!(f["text"].as_str().unwrap().chars().count() <= FIELD_MAX);
        }
        assert!(v["text"].as_str().unwrap().chars().count() <= TEXT_MAX);
        assert!(
            all.contains("<https://j.example/|Open the jitgate console>"),
            "{all}"
        );
    }
}
