//! The requester's console in a real headless Chromium: a requester lands
//! on My access; Request access lists the targets with each policy's limits,
//! refuses an over-long duration and a missing reason before sending, sends
//! a request that waits for an approval and one that is granted at once,
//! and shows the server's own message when the API refuses; My access
//! counts the grant down, shows the exact command to connect, and End my
//! access now closes a live tunnel session and leaves the grant revoked.
//! axe-core finds no violation on any of it.

use crate::common;

use common::a11y::{self, ENTER};
use common::browser::{Browser, DESKTOP, PHONE};
use common::daemon::*;
use common::tunnel::*;
use serde_json::{json, Value};

pub fn sign_in(b: &Browser, token: &str) {
    b.goto("/");
    b.type_into("#token", token);
    b.click("form.signin button[type=submit]");
    b.wait_js(
        "the signed-in console",
        "return !document.getElementById('nav').hidden && document.querySelector('main h1:not(#signin-title)') !== null",
        vec![],
    );
}

fn current_page(b: &Browser) -> Value {
    b.js(
        "return document.querySelector('#nav a[aria-current=page]')?.dataset.page ?? null",
        vec![],
    )
}

fn visible_nav(b: &Browser) -> Vec<String> {
    let v = b.js(
        "return [...document.querySelectorAll('#nav a')].filter(a => !a.hidden).map(a => a.dataset.page)",
        vec![],
    );
    serde_json::from_value(v).unwrap()
}

pub fn choose_target(b: &Browser, name: &str) {
    b.wait_js(
        &format!("{name} among the targets"),
        "return document.querySelector(`#req-target option[value=\"${arguments[0]}\"]`) !== null",
        vec![json!(name)],
    );
    b.js(
        "const s = document.getElementById('req-target'); s.value = arguments[0]; s.dispatchEvent(new Event('change')); return true",
        vec![json!(name)],
    );
}

pub fn set_field(b: &Browser, css: &str, text: &str) {
    b.js(
        "document.querySelector(arguments[0]).value = ''; return true",
        vec![json!(css)],
    );
    if !text.is_empty() {
        b.type_into(css, text);
    }
}

fn no_horizontal_scroll(b: &Browser, what: &str) {
    let overflow = b.js(
        "return document.documentElement.scrollWidth - window.innerWidth",
        vec![],
    );
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "{what} scrolls sideways by {overflow} at phone width"
    );
}

pub fn requests_of(d: &Daemon, token: &str) -> Vec<Value> {
    d.get("/v1/requests?limit=1000", Some(token))
        .unwrap()
        .json()["requests"]
        .as_array()
        .unwrap()
        .clone()
}

pub fn assert_no_problems(b: &Browser) {
    let p = b.js(
        "return document.documentElement.dataset.problems || null",
        vec![],
    );
    assert_eq!(
        p,
        Value::Null,
        "the console reported problems:\n{}",
        b.page_text()
    );
}

/// A policy whose reasons must name a ticket (`reason_pattern`).
const TICKETED: &str = r#"
[[targets]]
name = "tick-db"
kind = "tcp"
address = "127.0.0.1:6390"

[[policies]]
name = "ticketed"
requesters = ["group:oncall"]
targets = ["tick-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "2h"
require_reason = true
reason_pattern = "^(INC|CHG)-[0-9]+"
"#;

#[test]
fn a_requester_asks_through_the_form_and_the_form_checks_what_the_policy_says() {
    let up = Upstreams::start();
    let d = Daemon::start_with(
        None,
        &format!("{}{TICKETED}", up.config(common::free_port())),
    );
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    sign_in(&b, BOB);
    // A requester lands on My access; the nav offers only their pages.
    assert_eq!(current_page(&b), json!("access"));
    assert_eq!(visible_nav(&b), ["access", "request"]);
    b.wait_text(".access .empty, main .empty", "no active access");
    a11y::assert_clean(&b, "My access with nothing");

    b.click("#nav a[data-page=request]");
    b.wait_js(
        "the request page",
        "return document.querySelector('#req-target option') !== null",
        vec![],
    );
    // Every target a policy lets bob request, and only those.
    let names = b.js(
        "return [...document.querySelectorAll('#req-target option')].map(o => o.value)",
        vec![],
    );
    let api: Vec<String> = d.get("/v1/targets", Some(BOB)).unwrap().json()["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect();
    let mut shown: Vec<String> = serde_json::from_value(names).unwrap();
    let mut want = api.clone();
    shown.sort();
    want.sort();
    assert_eq!(shown, want);
    assert!(shown.contains(&"cache".to_string()) && shown.contains(&"auto-echo".to_string()));

    // cache: one approval, a reason required, default 30m, at most 2h.
    choose_target(&b, "cache");
    let limits = b.wait_text("#policy-limits", "1 approval needed");
    for part in ["oncall", "30m", "2h", "required"] {
        assert!(limits.contains(part), "limits lack {part}: {limits}");
    }
    assert_eq!(
        b.js(
            "return document.getElementById('req-duration').value",
            vec![]
        ),
        "30m"
    );
    assert!(b.text("label[for=req-reason]").contains("required"));
    a11y::assert_clean(&b, "Request access");
    a11y::tab_reaches_every_control(&b, "body", "Request access");

    // Over the maximum: said before sending, nothing sent.
    set_field(&b, "#req-duration", "3h");
    b.click("form.request-form button[type=submit]");
    let e = b.wait_text("#req-duration-error", "maximum");
    assert!(e.contains("2h"), "{e}");
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "req-duration"
    );
    // A missing reason, too.
    set_field(&b, "#req-duration", "45m");
    b.click("form.request-form button[type=submit]");
    b.wait_text("#req-reason-error", "requires a reason");
    assert!(
        b.js(
            "return document.getElementById('req-duration-error').hidden",
            vec![]
        ) == json!(true)
    );
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "req-reason"
    );
    a11y::assert_clean(&b, "Request access with field errors");
    b.screenshot("request-errors");
    assert!(requests_of(&d, BOB).is_empty(), "a refused form was sent");

    // tick-db's policy sets a reason_pattern (GET /v1/targets sends it):
    // the reason must match it, and the pattern is shown beside the field.
    choose_target(&b, "tick-db");
    b.wait_text("#policy-limits", "ticketed");
    assert_eq!(b.text("#req-reason-hint code.pattern"), "^(INC|CHG)-[0-9]+");
    set_field(&b, "#req-duration", "45m");
    b.type_into("#req-reason", "disk full");
    b.click("form.request-form button[type=submit]");
    b.wait_text("#req-reason-error", "must match ^(INC|CHG)-[0-9]+");
    assert!(requests_of(&d, BOB).is_empty(), "a refused form was sent");

    // With a matching reason: the request waits for one approval.
    set_field(&b, "#req-reason", "INC-9 disk full");
    b.click("form.request-form button[type=submit]");
    b.wait_text("#request-result", "waiting for 1 approval");
    let reqs = requests_of(&d, BOB);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0]["state"], "pending");
    assert_eq!(reqs[0]["target"], "tick-db");
    assert_eq!(reqs[0]["duration_seconds"], 2700);
    assert_eq!(reqs[0]["reason"], "INC-9 disk full");
    a11y::assert_clean(&b, "Request access after a pending request");

    // auto-echo: granted at once, with a link to My access.
    choose_target(&b, "auto-echo");
    b.wait_text("#policy-limits", "granted at once");
    set_field(&b, "#req-duration", "5m");
    b.click("form.request-form button[type=submit]");
    b.wait_text("#request-result", "Access granted: auto-echo for 5m");
    a11y::assert_clean(&b, "Request access after a grant");
    b.screenshot("request-granted");

    // The API refuses (bob was locked meanwhile): its own words are shown.
    let r = d
        .post("/v1/users/bob/lock", Some(DAVE), r#"{"reason":"audit"}"#)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    b.click("form.request-form button[type=submit]");
    let e = b.wait_text("#request-result .notice.error", "403");
    assert!(e.to_lowercase().contains("locked"), "{e}");
    a11y::assert_clean(&b, "Request access with an API error");
    b.resize(PHONE);
    no_horizontal_scroll(&b, "Request access");
    b.screenshot("request-phone");
    b.resize(DESKTOP);
    assert_no_problems(&b);
}

#[test]
fn my_access_counts_down_shows_the_command_and_ends_access_with_its_session() {
    let t = Tunnel::start();
    let Some(b) = Browser::start(&t.d.url()) else {
        return;
    };
    let pending = t.d.create_request(BOB, "cache", "30m");
    sign_in(&b, BOB);

    // Granted through the form, then followed to My access by its link.
    b.click("#nav a[data-page=request]");
    choose_target(&b, "auto-echo");
    set_field(&b, "#req-duration", "5m");
    b.click("form.request-form button[type=submit]");
    b.wait_text("#request-result", "Access granted");
    b.click("#request-result a[href='#/access']");
    let gid =
        t.d.get("/v1/grants?state=active", Some(BOB))
            .unwrap()
            .json()["grants"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let r = format!("tr[data-grant-id=\"{gid}\"]");
    b.wait_text(&format!("{r} td[data-label=Target]"), "auto-echo");
    // The pending request is listed too.
    let pr = format!(
        "tr[data-request-id=\"{}\"]",
        pending["id"].as_str().unwrap()
    );
    b.wait_text(&format!("{pr} td[data-label=Approvals]"), "0 of 1");

    // The countdown is out of the grant's 300 s and moves between polls.
    let bar = format!("{r} progress.remaining");
    let first = b.js(
        "const p = document.querySelector(arguments[0]); return [p.max, p.value]",
        vec![json!(bar)],
    );
    let (max, v0) = (first[0].as_f64().unwrap(), first[1].as_f64().unwrap());
    assert!((299.0..=300.0).contains(&max), "bar max {max}");
    assert!(v0 > 0.0 && v0 <= max, "bar value {v0}");
    // It counts down locally: with every API call left hanging (so no poll
    // can repaint), the bar still moves. Then a reload brings the API back.
    b.js(
        "window.fetch = () => new Promise(() => {}); return true",
        vec![],
    );
    let frozen = b.js(
        "return document.querySelector(arguments[0]).value",
        vec![json!(bar)],
    );
    b.wait_js(
        "the countdown to move with the API silent",
        "return document.querySelector(arguments[0]).value < arguments[1]",
        vec![json!(bar), frozen],
    );
    b.goto("/");
    b.find(&format!("{r} progress.remaining"));
    let left = b.text(&format!("{r} .left"));
    assert!(
        left.contains("m ") && left.ends_with('s'),
        "time remaining {left}"
    );

    // The exact command, with the proxy's tunnel address from whoami.
    let tcp = t.d.get("/v1/whoami", Some(BOB)).unwrap().json()["tcp_address"]
        .as_str()
        .unwrap()
        .to_string();
    let cmd = b.text(&format!("{r} code.command"));
    let want = format!("jitgate connect auto-echo --proxy {tcp} --listen 127.0.0.1:");
    assert!(cmd.starts_with(&want), "{cmd:?} is not {want:?}PORT");
    let port: u16 = cmd[want.len()..]
        .parse()
        .unwrap_or_else(|_| panic!("{cmd}"));
    assert!(port >= 1024, "{cmd}");
    b.click(&format!("{r} button.copy"));
    b.wait_js(
        "the copy button to answer",
        "const t = document.querySelector(arguments[0]).textContent; return t.startsWith('Copied ') || t.startsWith('Selected ')",
        vec![json!(format!("{r} button.copy"))],
    );

    // A live session through the real `jitgate connect` under that grant.
    let s =
        t.d.post(&format!("/v1/grants/{gid}/secret"), Some(BOB), "{}")
            .unwrap();
    assert_eq!(s.status, 200, "{}", s.body);
    let c = t.connect("auto-echo", s.json()["secret"].as_str().unwrap());
    let mut sock = c.open();
    echo(&mut sock, b"before");
    b.wait_text(&format!("{r} td[data-label='Live sessions']"), "1");
    a11y::assert_clean(&b, "My access with a live grant");
    b.screenshot("access");
    a11y::tab_reaches_every_control(&b, "body", "My access");
    b.resize(PHONE);
    b.find(&format!("{r} button.end"));
    no_horizontal_scroll(&b, "My access");
    b.screenshot("access-phone");
    a11y::assert_clean(&b, "My access at phone width");
    b.resize(DESKTOP);

    // End my access now: the warning dialog, by keyboard, with a reason.
    b.js(
        "document.querySelector(arguments[0]).focus(); return true",
        vec![json!(format!("{r} button.end"))],
    );
    b.keys(ENTER);
    let text = b.wait_text("dialog[open]", "cannot be undone");
    for part in [
        "immediately",
        "auto-echo",
        &gid,
        "Time remaining",
        "1 live session",
    ] {
        assert!(text.contains(part), "dialog lacks {part:?}:\n{text}");
    }
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "dialog-reason"
    );
    a11y::assert_clean(&b, "the End my access dialog");
    b.screenshot("end-access-dialog");
    b.type_into("#dialog-reason", "fix deployed");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "Ended your access to auto-echo: 1 session closed");
    assert!(
        closed_by_peer(&mut sock),
        "tunneled socket still open after End my access now"
    );
    // The grant leaves Active and shows as revoked.
    b.wait_gone(&format!("table.access {r}"));
    b.wait_text(&format!("table.access-ended {r} .state"), "revoked");
    let g =
        t.d.get(&format!("/v1/grants/{gid}"), Some(BOB))
            .unwrap()
            .json();
    assert_eq!(g["state"], "revoked", "{g}");
    assert_eq!(g["ended_by"], "bob");
    assert_eq!(g["end_comment"], "fix deployed");
    a11y::assert_clean(&b, "My access after ending a grant");

    // A pending request that an approver approves moves to Active; one
    // that bob withdraws leaves, closed in the API.
    let two = t.d.create_request(BOB, "two-db", "30m");
    let tr = format!("tr[data-request-id=\"{}\"]", two["id"].as_str().unwrap());
    b.find(&format!("{tr} button.withdraw"));
    let ok =
        t.d.post(
            &format!("/v1/requests/{}/approve", pending["id"].as_str().unwrap()),
            Some(CAROL),
            "{}",
        )
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    b.wait_gone(&pr);
    b.wait_text("table.access tr[data-target=cache] .status", "Active");
    b.click(&format!("{tr} button.withdraw"));
    b.wait_text("dialog[open]", "Withdraw your request for two-db");
    a11y::assert_clean(&b, "the Withdraw dialog");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "Withdrew your request for two-db");
    b.wait_gone(&tr);
    let r =
        t.d.get(
            &format!("/v1/requests/{}", two["id"].as_str().unwrap()),
            Some(BOB),
        )
        .unwrap()
        .json();
    assert_eq!(r["state"], "cancelled", "{r}");
    assert_no_problems(&b);
}

#[test]
fn connect_commands_follow_the_target_kind_and_approvers_keep_their_pages() {
    let extra = format!(
        r#"
[[targets]]
name = "auto-ssh"
kind = "ssh"
address = "127.0.0.1:1"
host_key = "{key}"
upstream = {{ user = "deploy", password_env = "JG_CONSOLE_PW" }}

[[targets]]
name = "auto-pg"
kind = "postgres"
address = "127.0.0.1:1"
upstream = {{ user = "app", password_env = "JG_CONSOLE_PW" }}
"#,
        key = include_str!("../fixtures/ssh/bob_ed25519.pub").trim()
    );
    let d = Daemon::start_with_env(None, "", &extra, &[("JG_CONSOLE_PW", "unused")]);
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    d.create_request(ALICE, "auto-ssh", "5m");
    d.create_request(ALICE, "auto-pg", "5m");
    sign_in(&b, ALICE);
    b.wait_text(
        "table.access tr[data-target=auto-ssh] code.command",
        "jitgate",
    );
    assert_eq!(
        b.text("table.access tr[data-target=auto-ssh] code.command"),
        "jitgate ssh auto-ssh"
    );
    assert_eq!(
        b.text("table.access tr[data-target=auto-pg] code.command"),
        "jitgate psql auto-pg"
    );
    a11y::assert_clean(&b, "My access with ssh and postgres grants");

    // An approver lands on Requests and keeps every page, the new ones too.
    b.click("#signout");
    sign_in(&b, CAROL);
    assert_eq!(current_page(&b), json!("requests"));
    assert_eq!(
        visible_nav(&b),
        [
            "requests",
            "sessions",
            "grants",
            "audit",
            "recordings",
            "access",
            "request"
        ]
    );
    b.click("#nav a[data-page=access]");
    b.wait_text("main .empty", "no active access");
    a11y::assert_clean(&b, "My access for an approver");
    assert_no_problems(&b);
}
