//! Break-glass in the console, in a real headless Chromium: offered on the
//! request form only where the policy allows it, with its warning and a
//! required reason checked against `reason_pattern` before sending; the
//! distinct badge and review state on My access; an approver's verdict
//! through the Grants page (never on their own grant). axe-core finds no
//! violation in any of these states, and the keyboard reaches them.

use crate::common;

use super::console_lifecycle::{daemon, focus, grant, submit, visible};
use super::console_requester::{
    assert_no_problems, choose_target, requests_of, set_field, sign_in,
};
use common::a11y::{self, ENTER, SPACE};
use common::browser::Browser;
use common::daemon::*;
use serde_json::json;

#[test]
fn break_glass_through_the_form_then_an_approver_reviews_it_on_grants() {
    let d = daemon();
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    let t = d.get("/v1/targets", Some(BOB)).unwrap().json();
    let row = |name: &str| {
        t["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("glass-db")["break_glass"], true);
    assert_eq!(row("cache")["break_glass"], false);

    sign_in(&b, BOB);
    b.click("#nav a[data-page=request]");
    choose_target(&b, "cache");
    b.wait_text("#policy-limits", "oncall");
    assert!(
        !visible(&b, "#req-break-glass"),
        "break-glass offered on cache"
    );
    choose_target(&b, "glass-db");
    b.wait_text("#policy-limits", "Break-glass");
    // By keyboard: Space ticks it; the warning says what it means.
    focus(&b, "#req-break-glass");
    b.keys(SPACE);
    b.wait_js(
        "break-glass to be ticked",
        "return document.getElementById('req-break-glass').checked",
        vec![],
    );
    let warning = b.text("#req-break-glass-warning");
    for part in [
        "at once",
        "without waiting for an approver",
        "reviews it afterwards",
        "reason is required",
    ] {
        assert!(warning.contains(part), "warning lacks {part:?}: {warning}");
    }
    assert!(
        !visible(&b, "#req-start"),
        "a start time offered with break-glass"
    );
    assert!(b.text("label[for=req-reason]").contains("required"));
    assert!(b
        .text("form.request-form button[type=submit]")
        .contains("Break glass"));
    a11y::assert_clean(&b, "Request access with break-glass ticked");
    a11y::tab_reaches_every_control(&b, "body", "Request access with break-glass");
    b.screenshot("request-break-glass");

    // A reason is required, and must match the policy's pattern.
    submit(&b);
    b.wait_text("#req-reason-error", "requires a reason");
    b.type_into("#req-reason", "db down");
    submit(&b);
    b.wait_text("#req-reason-error", "must match ^INC-[0-9]+");
    assert!(requests_of(&d, BOB).is_empty(), "a refused form was sent");
    a11y::assert_clean(&b, "Request access refusing a break-glass reason");

    set_field(&b, "#req-reason", "INC-7 db down");
    submit(&b);
    b.wait_text("#request-result", "Break-glass access granted: glass-db");
    let reqs = requests_of(&d, BOB);
    let gid = reqs[0]["grant_id"].as_str().unwrap().to_string();
    let g = grant(&d, &gid);
    assert_eq!(g["break_glass"], true, "{g}");
    assert_eq!(g["review"], "pending", "{g}");
    a11y::assert_clean(&b, "Request access after break-glass");

    // My access: the distinct badge and the review state.
    b.click("#request-result a[href='#/access']");
    let r = format!("table.access tr[data-grant-id=\"{gid}\"]");
    b.wait_text(&format!("{r} .review"), "review pending");
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).textContent",
            vec![json!(format!("{r} .badge.break-glass"))]
        ),
        "Break-glass"
    );
    a11y::assert_clean(&b, "My access with a break-glass grant");
    b.screenshot("access-break-glass");

    // carol breaks glass too; on Grants she may review bob's, not her own.
    let mine = d
        .post(
            "/v1/requests",
            Some(CAROL),
            &json!({"target": "glass-db", "duration": "10m", "reason": "INC-8", "break_glass": true}).to_string(),
        )
        .unwrap();
    assert_eq!(mine.status, 201, "{}", mine.body);
    let own = mine.json()["grant"]["id"].as_str().unwrap().to_string();
    b.click("#signout");
    sign_in(&b, CAROL);
    b.click("#nav a[data-page=grants]");
    let gr = format!("table.grants tr[data-grant-id=\"{gid}\"]");
    b.wait_text(&format!("{gr} .review"), "review pending");
    b.find(&format!("{gr} button.review-action"));
    b.wait_text(
        &format!("table.grants tr[data-grant-id=\"{own}\"] .review"),
        "review pending",
    );
    assert!(
        !visible(
            &b,
            &format!("table.grants tr[data-grant-id=\"{own}\"] button.review-action")
        ),
        "Review offered on carol's own grant"
    );
    a11y::assert_clean(&b, "Grants with break-glass grants");
    a11y::tab_reaches_every_control(&b, "body", "Grants with Review");

    // Review by keyboard: a verdict is required, and a comment when unjustified.
    focus(&b, &format!("{gr} button.review-action"));
    b.keys(ENTER);
    let text = b.wait_text(
        "dialog[open]",
        "Review bob's break-glass access to glass-db",
    );
    assert!(
        text.contains("INC-7 db down"),
        "the reviewer is not shown the reason:\n{text}"
    );
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "verdict-justified"
    );
    a11y::assert_clean(&b, "the Review dialog");
    b.screenshot("review-dialog");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(
        "dialog[open] .dialog-error",
        "Choose justified or unjustified",
    );
    b.click("#verdict-unjustified");
    b.click("dialog[open] button[type=submit]");
    b.wait_text("dialog[open] .dialog-error", "Say why");
    assert_eq!(
        grant(&d, &gid)["review"],
        "pending",
        "a refused review was sent"
    );
    b.type_into("#dialog-reason", "could have waited for erin");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "was unjustified");
    let g = grant(&d, &gid);
    assert_eq!(g["review"], "unjustified", "{g}");
    assert_eq!(g["reviewed_by"], "carol");
    assert_eq!(g["review_comment"], "could have waited for erin");
    b.wait_text(&format!("{gr} .review"), "reviewed: unjustified by carol");
    assert!(
        !visible(&b, &format!("{gr} button.review-action")),
        "Review offered twice"
    );
    a11y::assert_clean(&b, "Grants after a review");
    assert_no_problems(&b);
}
