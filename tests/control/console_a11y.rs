//! The console's accessibility in a real headless Chromium: axe-core finds
//! no violation on any page (sign-in, Requests, Active Sessions with a live
//! session, Grants, Audit, the requester's pages, the dialogs, phone width),
//! Tab reaches every control, Enter and Space use them, and the dialog keeps
//! focus inside, closes on Escape and gives focus back to its opener.

use crate::common;

use common::a11y::{self, ENTER, ESCAPE, SHIFT, SPACE, TAB};
use common::browser::{Browser, DESKTOP, PHONE};
use common::daemon::*;
use common::tunnel::*;
use serde_json::json;

/// Signs in with the keyboard only: the token typed, Enter to submit.
fn sign_in_by_keyboard(b: &Browser, token: &str) {
    b.goto("/");
    b.type_into("#token", token);
    b.keys(ENTER);
    b.wait_js(
        "the signed-in console",
        "return !document.getElementById('nav').hidden && document.querySelector('main h1:not(#signin-title)') !== null",
        vec![],
    );
}

/// Moves to `page` with the keyboard: focus its nav link, press Enter.
fn open_by_keyboard(b: &Browser, page: &str) {
    let current = b.js(
        "return document.querySelector('#nav a[aria-current=page]')?.dataset.page ?? null",
        vec![],
    );
    if current == json!(page) {
        return;
    }
    b.js(
        "document.querySelector(`#nav a[data-page=${arguments[0]}]`).focus(); return true",
        vec![json!(page)],
    );
    b.keys(ENTER);
    b.wait_js(
        &format!("the {page} page"),
        "return document.querySelector('#nav a[aria-current=page]')?.dataset.page === arguments[0] && document.activeElement.tagName === 'H1'",
        vec![json!(page)],
    );
}

fn sign_out(b: &Browser) {
    focus(b, "#signout");
    b.keys(ENTER);
    b.wait_text("#signin-status", "Signed out");
}

fn focus(b: &Browser, css: &str) {
    b.find(css);
    b.js(
        "document.querySelector(arguments[0]).focus(); return true",
        vec![json!(css)],
    );
}

fn dialog_open(b: &Browser) -> bool {
    b.js("return document.getElementById('dialog').open", vec![]) == json!(true)
}

/// The open dialog keeps focus inside through a full cycle of Tab and of
/// Shift+Tab, closes on Escape, and gives focus back to `opener`.
fn assert_dialog_keyboard(b: &Browser, opener: &str, what: &str) {
    let stops = b
        .js(
            "return document.querySelectorAll('dialog[open] textarea, dialog[open] input, dialog[open] button:not([hidden]):not(:disabled), dialog[open] a[href]').length",
            vec![],
        )
        .as_u64()
        .unwrap_or(0) as usize;
    assert!(stops >= 2, "{what}: dialog has {stops} controls");
    for i in 0..stops + 2 {
        assert!(
            a11y::key_keeps_focus_in(b, TAB, "dialog[open]"),
            "{what}: Tab number {} left the dialog for {}",
            i + 1,
            a11y::focused(b)
        );
    }
    for i in 0..stops + 2 {
        assert!(
            a11y::key_keeps_focus_in(b, &format!("{SHIFT}{TAB}"), "dialog[open]"),
            "{what}: Shift+Tab number {} left the dialog for {}",
            i + 1,
            a11y::focused(b)
        );
    }
    b.keys(ESCAPE);
    b.wait_js(
        "Escape to close the dialog",
        "return !document.getElementById('dialog').open",
        vec![],
    );
    assert_eq!(
        b.js(
            "return document.activeElement.matches(arguments[0])",
            vec![json!(opener)]
        ),
        json!(true),
        "{what}: focus went to {} instead of back to {opener}",
        a11y::focused(b)
    );
}

#[test]
fn every_console_page_passes_axe_and_works_by_keyboard() {
    let t = Tunnel::start();
    let Some(b) = Browser::start(&t.d.url()) else {
        return;
    };
    // Something on every page: a live session, a pending request, grants
    // and audit events.
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let c = t.connect("auto-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"a11y");
    let pending = t.d.create_request(ALICE, "cache", "30m");
    let rid = pending["id"].as_str().unwrap().to_string();

    b.goto("/");
    b.find("#token");
    a11y::assert_clean(&b, "the sign-in page");
    a11y::tab_reaches_every_control(&b, "body", "the sign-in page");
    b.type_into("#token", "jgt_wrong");
    b.keys(ENTER);
    b.wait_text("#signin-status", "401");
    a11y::assert_clean(&b, "the sign-in page with a 401");

    // Carol approves under `oncall`: Requests has her buttons.
    sign_in_by_keyboard(&b, CAROL);
    open_by_keyboard(&b, "requests");
    b.find(&format!("tr[data-request-id=\"{rid}\"] button.approve"));
    a11y::assert_clean(&b, "Requests");
    a11y::tab_reaches_every_control(&b, "body", "Requests");
    focus(&b, &format!("tr[data-request-id=\"{rid}\"] button.deny"));
    b.keys(SPACE);
    b.wait_text("dialog[open]", "Deny alice's request");
    a11y::assert_clean(&b, "the deny dialog");
    assert_dialog_keyboard(
        &b,
        &format!("tr[data-request-id=\"{rid}\"] button.deny"),
        "deny dialog",
    );

    // Dave (admin) oversees every session.
    sign_out(&b);
    sign_in_by_keyboard(&b, DAVE);
    open_by_keyboard(&b, "sessions");
    let revoke = format!("tr[data-grant-id=\"{gid}\"] button.revoke");
    b.find(&revoke);
    a11y::assert_clean(&b, "Active Sessions");
    a11y::tab_reaches_every_control(&b, "body", "Active Sessions");
    // Space on a checkbox selects; Enter on a button opens its dialog.
    focus(&b, "#select-all");
    b.keys(SPACE);
    b.wait_text("#bulk-revoke", "(1)");
    b.keys(SPACE);
    focus(&b, &revoke);
    b.keys(ENTER);
    b.wait_text("dialog[open]", "cannot be undone");
    assert!(dialog_open(&b));
    a11y::assert_clean(&b, "the revoke dialog");
    assert_dialog_keyboard(&b, &revoke, "revoke dialog");
    b.resize(PHONE);
    b.find(&revoke);
    a11y::assert_clean(&b, "Active Sessions at phone width");
    b.resize(DESKTOP);

    open_by_keyboard(&b, "grants");
    b.find(&format!("tr[data-grant-id=\"{gid}\"]"));
    a11y::assert_clean(&b, "Grants");
    a11y::tab_reaches_every_control(&b, "body", "Grants");

    open_by_keyboard(&b, "audit");
    b.wait_text("#chain-status[data-ok=true]", "Chain verified");
    a11y::assert_clean(&b, "Audit");
    a11y::tab_reaches_every_control(&b, "body", "Audit");

    // An admin who may request nothing: the requester's pages say so.
    open_by_keyboard(&b, "access");
    b.wait_text("main .empty", "no active access");
    a11y::assert_clean(&b, "My access, empty");
    open_by_keyboard(&b, "request");
    b.wait_text("main .empty", "No policy lets you request");
    a11y::assert_clean(&b, "Request access with no target");

    // A requester: My access with the live grant, its dialog, the form.
    sign_out(&b);
    a11y::assert_clean(&b, "the sign-in page after signing out");
    sign_in_by_keyboard(&b, BOB);
    let end = format!("tr[data-grant-id=\"{gid}\"] button.end");
    b.find(&end);
    b.wait_text(
        &format!("tr[data-grant-id=\"{gid}\"] td[data-label='Live sessions']"),
        "1",
    );
    a11y::assert_clean(&b, "My access");
    a11y::tab_reaches_every_control(&b, "body", "My access");
    focus(&b, &end);
    b.keys(SPACE);
    b.wait_text("dialog[open]", "cannot be undone");
    a11y::assert_clean(&b, "the End my access dialog");
    assert_dialog_keyboard(&b, &end, "End my access dialog");
    b.resize(PHONE);
    a11y::assert_clean(&b, "My access at phone width");
    b.resize(DESKTOP);
    open_by_keyboard(&b, "request");
    b.find("#req-target");
    a11y::assert_clean(&b, "Request access");
    a11y::tab_reaches_every_control(&b, "body", "Request access");
    // The empty form is refused with errors beside the fields.
    focus(&b, "#req-duration");
    b.js(
        "document.getElementById('req-duration').value = ''; return true",
        vec![],
    );
    b.keys(ENTER);
    b.wait_text("#req-duration-error", "Write the duration");
    a11y::assert_clean(&b, "Request access with a field error");

    b.goto("/#/requests");
    b.wait_text(".forbidden", "403");
    a11y::assert_clean(&b, "Requests for a requester (403 notice)");
    b.goto("/#/audit");
    b.wait_text(".notice.error[data-status=\"403\"]", "403");
    a11y::assert_clean(&b, "Audit for a requester (403)");
    // Injecting axe through WebDriver did not trip the page's CSP.
    assert_eq!(
        b.js(
            "return document.documentElement.dataset.problems || null",
            vec![]
        ),
        serde_json::Value::Null,
        "{}",
        b.page_text()
    );
}
