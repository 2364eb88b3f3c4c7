//! `format = "slack"` receivers get Slack's incoming-webhook JSON, checked
//! here against Block Kit's documented schema (api.slack.com/reference/
//! block-kit: blocks, composition objects, and their limits), still signed
//! with the receiver's secret.

use crate::common;

use common::daemon::*;
use common::wait::OutputWithin;
use serde_json::{json, Map, Value};

const SECRET_ENV: &str = "JITGATE_TEST_SLACK_SECRET";
const SECRET: &str = "whsec-slack-9d2e";

fn keys_within(o: &Map<String, Value>, allowed: &[&str], what: &str) {
    for k in o.keys() {
        assert!(
            allowed.contains(&k.as_str()),
            "{what}: unknown key {k:?} in {o:?}"
        );
    }
}

/// A composition text object: `type` plain_text | mrkdwn, non-empty
/// `text` of at most `max` characters; `emoji` only on plain_text,
/// `verbatim` only on mrkdwn.
fn text_object(v: &Value, max: usize, only: Option<&str>, what: &str) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    keys_within(o, &["type", "text", "emoji", "verbatim"], what);
    let ty = o["type"].as_str().unwrap_or_default();
    assert!(ty == "plain_text" || ty == "mrkdwn", "{what}: type {ty:?}");
    if let Some(only) = only {
        assert_eq!(ty, only, "{what}");
    }
    let text = o["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no text"));
    let n = text.chars().count();
    assert!(n >= 1 && n <= max, "{what}: {n} characters, limit {max}");
    if o.contains_key("emoji") {
        assert_eq!(ty, "plain_text", "{what}: emoji is for plain_text");
        assert!(o["emoji"].is_boolean());
    }
    if o.contains_key("verbatim") {
        assert_eq!(ty, "mrkdwn", "{what}: verbatim is for mrkdwn");
        assert!(o["verbatim"].is_boolean());
    }
}

/// An incoming-webhook message: `text` (the notification fallback) and at
/// most 50 `blocks` of the layout types used in messages, each within its
/// limits.
fn check_slack_message(v: &Value) {
    let o = v.as_object().expect("message is an object");
    keys_within(o, &["text", "blocks", "mrkdwn", "thread_ts"], "message");
    let text = o["text"].as_str().expect("text fallback");
    assert!(!text.is_empty() && text.chars().count() <= 40_000);
    let blocks = o["blocks"].as_array().expect("blocks");
    assert!(
        !blocks.is_empty() && blocks.len() <= 50,
        "{} blocks",
        blocks.len()
    );
    for (i, b) in blocks.iter().enumerate() {
        let what = format!("blocks[{i}]");
        let b = b
            .as_object()
            .unwrap_or_else(|| panic!("{what}: not an object"));
        if let Some(id) = b.get("block_id") {
            assert!(
                id.as_str().is_some_and(|s| s.chars().count() <= 255),
                "{what}"
            );
        }
        match b["type"].as_str().unwrap_or_default() {
            "header" => {
                keys_within(b, &["type", "text", "block_id"], &what);
                text_object(&b["text"], 150, Some("plain_text"), &what);
            }
            "section" => {
                keys_within(
                    b,
                    &["type", "text", "fields", "block_id", "accessory"],
                    &what,
                );
                assert!(b.contains_key("text") || b.contains_key("fields"), "{what}");
                if let Some(t) = b.get("text") {
                    text_object(t, 3000, None, &what);
                }
                if let Some(f) = b.get("fields") {
                    let f = f.as_array().expect("fields is a list");
                    assert!(!f.is_empty() && f.len() <= 10, "{what}: {} fields", f.len());
                    for (j, t) in f.iter().enumerate() {
                        text_object(t, 2000, None, &format!("{what}.fields[{j}]"));
                    }
                }
            }
            "context" => {
                keys_within(b, &["type", "elements", "block_id"], &what);
                let e = b["elements"].as_array().expect("elements");
                assert!(!e.is_empty() && e.len() <= 10, "{what}");
                for (j, t) in e.iter().enumerate() {
                    text_object(t, 3000, None, &format!("{what}.elements[{j}]"));
                }
            }
            "divider" => keys_within(b, &["type", "block_id"], &what),
            other => panic!("{what}: block type {other:?} not expected in a message"),
        }
    }
}

#[test]
fn a_slack_receiver_gets_block_kit_json_with_a_console_link_still_signed() {
    std::env::set_var(SECRET_ENV, SECRET);
    let hook = common::hook::Hook::start();
    let extra = format!(
        "\n[[notify]]\nurl = \"http://127.0.0.1:{}/slack\"\nevents = [\"*\"]\nformat = \"slack\"\nsecret_env = \"{SECRET_ENV}\"\n",
        hook.port
    );
    let mut d = Daemon::configured(None, "", &extra);
    let text = std::fs::read_to_string(&d.config).unwrap().replace(
        "[admin]\n",
        "[admin]\npublic_url = \"https://jitgate.example.com:8443\"\n",
    );
    std::fs::write(&d.config, text).unwrap();
    d.spawn();
    let reason = "INC-42 <!channel> disk full & <https://evil.example|click>";
    let body = json!({"target": "cache", "duration": "30m", "reason": reason});
    let r = d
        .post("/v1/requests", Some(ALICE), &body.to_string())
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);

    let hit = hook.wait_for("a Slack message", |h| {
        String::from_utf8_lossy(&h.body).contains("requests access")
    });
    let v = hit.json();
    check_slack_message(&v);
    assert_eq!(
        hit.headers.get("x-jitgate-signature").map(String::as_str),
        Some(jitgate::notify::sign::signature(SECRET.as_bytes(), &hit.body).as_str()),
        "signed over the exact Slack body"
    );
    let all = v.to_string();
    for want in [
        "alice",
        "cache",
        "30m",
        "INC-42",
        "<https://jitgate.example.com:8443/|Open the jitgate console>",
    ] {
        assert!(all.contains(want), "{want:?} missing: {all}");
    }
    // The requester's text cannot mention the channel or post a link.
    assert!(
        !all.contains("<!channel>") && !all.contains("<https://evil"),
        "{all}"
    );
    assert!(all.contains("&lt;!channel&gt;"), "{all}");

    // Every later event renders to the schema too (approved, ended).
    let rid = r.json()["id"].as_str().unwrap().to_string();
    let gid = d.approve(&rid, CAROL).json()["grant_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.revoke(&gid, "done");
    hook.wait_for("the grant.ended message", |h| {
        String::from_utf8_lossy(&h.body).contains("Access ended")
    });
    for h in hook.hits() {
        check_slack_message(&h.json());
    }
}

#[test]
fn an_unknown_notify_format_is_refused_at_load() {
    let d = Daemon::configured(
        None,
        "",
        "\n[[notify]]\nurl = \"http://127.0.0.1:9/x\"\nevents = [\"*\"]\nformat = \"teams\"\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&d.config)
        .output_within(common::wait::HANG);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("notify[0].format") && err.contains("teams"),
        "{err}"
    );
}
