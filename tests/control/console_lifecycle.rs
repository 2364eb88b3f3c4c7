//! The grant lifecycle in the console, in a real headless Chromium: a start
//! time on the request form (checked against `max_schedule_ahead` before
//! sending) and the scheduled grant counting down to its start on My
//! access; Extend on My access (refused past `max_total` or against
//! `reason_pattern` before sending, approved at once with the countdown
//! moving to the new end while a real `jitgate connect` session stays open,
//! or pending and then approved on the Requests page as an extension of its
//! grant). Break-glass and its review are in console_break_glass.rs.
//! axe-core finds no violation in any of these states, and the keyboard
//! reaches them.

use crate::common;

use super::console_requester::{
    assert_no_problems, choose_target, requests_of, set_field, sign_in,
};
use common::a11y::{self, ENTER};
use common::browser::Browser;
use common::daemon::*;
use common::lifecycle::{grant_end, ms};
use common::tunnel::*;
use serde_json::{json, Value};

pub const POLICIES: &str = r#"
[[targets]]
name = "plan-db"
kind = "tcp"
address = "127.0.0.1:6392"

[[targets]]
name = "glass-db"
kind = "tcp"
address = "127.0.0.1:6393"

[[targets]]
name = "tick-db"
kind = "tcp"
address = "127.0.0.1:6390"

[[policies]]
name = "planned"
requesters = ["group:oncall"]
targets = ["plan-*"]
approvals_required = 0
max_duration = "1h"
max_schedule_ahead = "2h"

[[policies]]
name = "emergency"
requesters = ["group:oncall", "carol"]
targets = ["glass-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "1h"
break_glass = true
reason_pattern = "^INC-[0-9]+"

[[policies]]
name = "ticketed"
requesters = ["group:oncall"]
targets = ["tick-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "10m"
max_total = "20m"
reason_pattern = "^(INC|CHG)-[0-9]+"
"#;

pub fn daemon() -> Daemon {
    Daemon::start_with(None, POLICIES)
}

pub fn submit(b: &Browser) {
    b.click("form.request-form button[type=submit]");
}

/// Sets the start time field to now + `offset_ms` in the browser's own
/// time zone (as its date picker would) and returns the instant it means.
fn set_start(b: &Browser, offset_ms: i64) -> i64 {
    let iso = b.js(
        "const el = document.getElementById('req-start'); const d = new Date(Date.now() + arguments[0]); \
         const p = (n) => String(n).padStart(2, '0'); \
         el.value = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`; \
         el.dispatchEvent(new Event('input')); return new Date(el.value).toISOString()",
        vec![json!(offset_ms)],
    );
    ms(&iso)
}

pub fn focus(b: &Browser, css: &str) {
    b.find(css);
    b.js(
        "document.querySelector(arguments[0]).focus(); return true",
        vec![json!(css)],
    );
}

pub fn grant(d: &Daemon, gid: &str) -> Value {
    let r = d.get(&format!("/v1/grants/{gid}"), Some(DAVE)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

pub fn visible(b: &Browser, css: &str) -> bool {
    b.js(
        "const e = document.querySelector(arguments[0]); return !!e && e.getClientRects().length > 0",
        vec![json!(css)],
    ) == json!(true)
}

#[test]
fn a_start_time_on_the_form_schedules_access_shown_counting_down_on_my_access() {
    let d = daemon();
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    sign_in(&b, BOB);
    b.click("#nav a[data-page=request]");
    choose_target(&b, "plan-db");
    let limits = b.wait_text("#policy-limits", "up to 2h ahead");
    assert!(limits.contains("planned"), "{limits}");
    assert!(b.text("#req-start-hint").contains("at most 2h ahead"));
    // No break-glass under this policy.
    assert!(!visible(&b, "#req-break-glass"), "break-glass offered");

    // Past max_schedule_ahead, and in the past: said before sending.
    set_start(&b, 3 * 3600 * 1000);
    submit(&b);
    b.wait_text("#req-start-error", "max_schedule_ahead of 2h");
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "req-start"
    );
    set_start(&b, -10 * 60 * 1000);
    submit(&b);
    b.wait_text("#req-start-error", "has passed");
    assert!(requests_of(&d, BOB).is_empty(), "a refused form was sent");
    a11y::assert_clean(&b, "Request access with a start time refused");

    // Half an hour ahead: shown in local time, sent as RFC 3339 UTC.
    let want = set_start(&b, 30 * 60 * 1000);
    let preview = b.wait_text("#req-start-preview", "(your local time");
    assert!(preview.contains("starts at"), "{preview}");
    set_field(&b, "#req-duration", "20m");
    a11y::tab_reaches_every_control(&b, "body", "Request access with a start time");
    submit(&b);
    let said = b.wait_text("#request-result", "Access scheduled: plan-db for 20m");
    assert!(said.contains("(your local time"), "{said}");
    let reqs = requests_of(&d, BOB);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(ms(&reqs[0]["starts_at"]), want, "{}", reqs[0]);
    let gid = reqs[0]["grant_id"].as_str().unwrap().to_string();
    let g = grant(&d, &gid);
    assert_eq!(g["state"], "scheduled", "{g}");
    assert_eq!(ms(&g["expires_at"]), want + 20 * 60 * 1000);
    a11y::assert_clean(&b, "Request access after scheduling");

    // My access: scheduled, its start, counting down to it; no Extend yet.
    b.click("#request-result a[href='#/access']");
    let r = format!("table.access tr[data-grant-id=\"{gid}\"]");
    b.wait_text(&format!("{r} .status"), "Scheduled");
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).dataset.state",
            vec![json!(r)]
        ),
        "scheduled"
    );
    let starts = b.text(&format!("{r} .starts"));
    assert!(
        starts.contains("starts at") && starts.contains("(your local time"),
        "{starts}"
    );
    let first = b.wait_text(&format!("{r} .left"), "starts in");
    assert!(first.contains("m "), "{first}");
    b.wait_js(
        "the countdown to the start to move",
        "return document.querySelector(arguments[0]).textContent !== arguments[1]",
        vec![json!(format!("{r} .left")), json!(first)],
    );
    assert!(
        !visible(&b, &format!("{r} button.extend")),
        "Extend on a scheduled grant"
    );
    assert!(b
        .text(&format!("{r} button.end"))
        .contains("Cancel this scheduled access"));
    a11y::assert_clean(&b, "My access with a scheduled grant");
    b.screenshot("access-scheduled");
    assert_no_problems(&b);
}

#[test]
fn extend_moves_the_countdown_to_the_new_end_while_a_tunnel_session_stays_open() {
    let t = Tunnel::start();
    let Some(b) = Browser::start(&t.d.url()) else {
        return;
    };
    // auto-echo: no approval, max_duration (so max_total) 10m.
    let (gid, secret) = t.grant(BOB, "auto-echo", "2m");
    let mut c = t.connect("auto-echo", &secret);
    let mut sock = c.open();
    echo(&mut sock, b"before");
    let before = grant_end(&t.d, &gid);

    sign_in(&b, BOB);
    let r = format!("table.access tr[data-grant-id=\"{gid}\"]");
    b.wait_text(&format!("{r} td[data-label='Live sessions']"), "1");
    let bar = format!("{r} progress.remaining");
    let max0 = b.js(
        "return document.querySelector(arguments[0]).max",
        vec![json!(bar)],
    );
    assert!(
        (119.0..=120.0).contains(&max0.as_f64().unwrap()),
        "bar max {max0}"
    );
    a11y::tab_reaches_every_control(&b, "body", "My access with Extend");
    b.js("window.__notReloaded = true; return true", vec![]);

    // Extend by keyboard: the dialog opens on the duration field.
    focus(&b, &format!("{r} button.extend"));
    b.keys(ENTER);
    let text = b.wait_text("dialog[open]", "Extend your access to auto-echo");
    assert!(text.contains(&gid), "{text}");
    let room = b.text("dialog[open] .room");
    assert!(
        room.contains("8m 00s more") && room.contains("10m in all"),
        "{room}"
    );
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "extend-duration"
    );
    a11y::assert_clean(&b, "the Extend dialog");
    b.screenshot("extend-dialog");

    // More than the room under max_total: refused before sending.
    set_field(&b, "#extend-duration", "9m");
    b.click("dialog[open] button[type=submit]");
    let e = b.wait_text("dialog[open] .dialog-error", "max_total");
    assert!(e.contains("8m 00s left"), "{e}");
    assert_eq!(
        grant_end(&t.d, &gid),
        before,
        "a refused extension was sent"
    );
    a11y::assert_clean(&b, "the Extend dialog with an error");

    // 5m: approved at once, the countdown moves to the new end in place.
    set_field(&b, "#extend-duration", "5m");
    b.click("dialog[open] button[type=submit]");
    let said = b.wait_text(".flash", "Extended your access to auto-echo by 5m");
    assert!(
        said.contains("(") && said.contains("your local time"),
        "{said}"
    );
    let after = grant_end(&t.d, &gid);
    assert_eq!(after - before, 5 * 60 * 1000);
    let now = b.js(
        "const p = document.querySelector(arguments[0]); return [p.max, p.value, window.__notReloaded === true]",
        vec![json!(bar)],
    );
    let (max, left) = (now[0].as_f64().unwrap(), now[1].as_f64().unwrap());
    assert!(
        (419.0..=420.0).contains(&max),
        "bar max {max} after the extension"
    );
    assert!(
        left > 300.0,
        "{left} s left after extending a 2m grant by 5m"
    );
    assert_eq!(now[2], json!(true), "the page reloaded");
    let clock = b.text(&format!("{r} .left"));
    assert!(clock.starts_with(['5', '6']), "time remaining {clock}");

    // The same tunnel session carries on, through the same socket.
    echo(&mut sock, b"after the extension");
    assert!(
        c.child.try_wait().unwrap().is_none(),
        "jitgate connect exited"
    );
    b.wait_text(&format!("{r} td[data-label='Live sessions']"), "1");
    a11y::assert_clean(&b, "My access after an extension");
    assert_no_problems(&b);
}

#[test]
fn a_pending_extension_checks_the_pattern_and_is_approved_on_requests_as_an_extension() {
    let d = daemon();
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    let req = d.create_request(BOB, "tick-db", "10m");
    let ok = d
        .post(
            &format!("/v1/requests/{}/approve", req["id"].as_str().unwrap()),
            Some(CAROL),
            "{}",
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let gid = ok.json()["grant"]["id"].as_str().unwrap().to_string();
    let before = grant_end(&d, &gid);

    sign_in(&b, BOB);
    let r = format!("table.access tr[data-grant-id=\"{gid}\"]");
    b.click(&format!("{r} button.extend"));
    b.wait_text("dialog[open]", "Extend your access to tick-db");
    let room = b.text("dialog[open] .room");
    assert!(
        room.contains("10m 00s more") && room.contains("20m in all"),
        "{room}"
    );
    assert_eq!(
        b.text("#dialog-reason-hint code.pattern"),
        "^(INC|CHG)-[0-9]+"
    );

    // reason_pattern: refused before sending, naming the pattern.
    set_field(&b, "#extend-duration", "5m");
    b.type_into("#dialog-reason", "more time");
    b.click("dialog[open] button[type=submit]");
    b.wait_text("dialog[open] .dialog-error", "must match ^(INC|CHG)-[0-9]+");
    assert_eq!(
        requests_of(&d, BOB)
            .iter()
            .filter(|x| x["kind"] == "extension")
            .count(),
        0,
        "a refused extension was sent"
    );
    a11y::assert_clean(&b, "the Extend dialog refusing a reason");

    // A matching reason: pending, listed as an extension of the grant.
    set_field(&b, "#dialog-reason", "INC-2 more time");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "waiting for 1 approval");
    let ext = requests_of(&d, BOB)
        .into_iter()
        .find(|x| x["kind"] == "extension")
        .expect("the extension request");
    assert_eq!(ext["extends_grant"], gid.as_str());
    assert_eq!(ext["state"], "pending");
    let xr = format!("tr[data-request-id=\"{}\"]", ext["id"].as_str().unwrap());
    let row = b.wait_text(&xr, "extension of grant");
    assert!(row.contains(&gid) && row.contains("5m more"), "{row}");
    assert_eq!(grant_end(&d, &gid), before, "pending moved the end");
    a11y::assert_clean(&b, "My access with a pending extension");

    // carol approves it on Requests, where it is marked as an extension.
    b.click("#signout");
    sign_in(&b, CAROL);
    let row = b.wait_text(&format!("table.requests {xr}"), "extension of grant");
    assert!(row.contains(&gid), "{row}");
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).dataset.kind",
            vec![json!(xr)]
        ),
        "extension"
    );
    a11y::assert_clean(&b, "Requests with an extension");
    focus(&b, &format!("{xr} button.approve"));
    b.keys(ENTER);
    let text = b.wait_text("dialog[open]", "extension of grant");
    assert!(text.contains("5m longer"), "{text}");
    a11y::assert_clean(&b, "the approve dialog of an extension");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "Approved bob's extension of grant");
    assert_eq!(grant_end(&d, &gid) - before, 5 * 60 * 1000);
    assert_no_problems(&b);
}
