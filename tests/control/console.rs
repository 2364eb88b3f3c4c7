//! The web console in a real headless Chromium: sign-in, a live session made
//! through the TCP front end counting down and revoked through the dialog
//! (row gone, tunneled socket closed, grant revoked), terminate and bulk
//! revoke, approve and deny from the Requests page, and readable 401, 403
//! and 409 messages. Each page's screenshot goes to
//! target/console-screenshots/.

use crate::common;

use common::browser::{Browser, DESKTOP, PHONE};
use common::daemon::*;
use common::tunnel::*;
use serde_json::{json, Value};
use std::io::{Read, Write};

const ESCAPE: &str = "\u{e00c}";
const ENTER: &str = "\u{e007}";

fn sign_in(b: &Browser, token: &str) {
    b.goto("/");
    b.type_into("#token", token);
    b.click("form.signin button[type=submit]");
    b.wait_js(
        "the signed-in console",
        "return !document.getElementById('nav').hidden && document.querySelector('main h1:not(#signin-title)') !== null",
        vec![],
    );
}

fn open_page(b: &Browser, page: &str) {
    b.click(&format!("#nav a[data-page={page}]"));
    b.wait_js(
        &format!("the {page} page"),
        "return document.querySelector(`#nav a[aria-current=page]`)?.dataset.page === arguments[0]",
        vec![json!(page)],
    );
}

fn row(session_id: &str) -> String {
    format!("tr[data-session-id=\"{session_id}\"]")
}

/// No CSP violation, script error or unhandled rejection was reported.
fn assert_no_problems(b: &Browser) {
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

fn sessions_of(d: &Daemon) -> Vec<Value> {
    d.get("/v1/sessions", Some(DAVE)).unwrap().json()["sessions"]
        .as_array()
        .unwrap()
        .clone()
}

fn session_id_of(d: &Daemon, grant: &str, known: &[String]) -> String {
    let mut id = String::new();
    wait_for("the session to be listed", || {
        id = sessions_of(d)
            .iter()
            .filter(|s| s["grant_id"] == grant)
            .filter_map(|s| s["id"].as_str())
            .find(|s| !known.iter().any(|k| k == s))
            .unwrap_or_default()
            .to_string();
        !id.is_empty()
    });
    id
}

/// Status line and headers of a raw GET, and the body.
fn raw_get(port: u16, path: &str, extra: &str) -> (String, Vec<(String, String)>, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {h:?}"))
}

#[test]
fn console_is_served_without_a_token_under_a_strict_csp_with_cache_headers() {
    let d = Daemon::start();
    let (status, h, body) = raw_get(d.admin_port, "/", "");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    let csp = header(&h, "content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&h, "x-content-type-options"), "nosniff");
    assert_eq!(header(&h, "referrer-policy"), "no-referrer");
    assert_eq!(header(&h, "x-frame-options"), "DENY");
    assert_eq!(header(&h, "cache-control"), "no-cache");
    let etag = header(&h, "etag").to_string();

    // Revalidation: an unchanged index is a 304 with no body.
    let (status, _, body304) = raw_get(d.admin_port, "/", &format!("If-None-Match: {etag}\r\n"));
    assert!(status.contains(" 304 "), "{status}");
    assert!(body304.is_empty());

    // Every asset the index names is served with its own type, immutable.
    let assets: Vec<&str> = body
        .split('"')
        .filter(|s| s.starts_with("/console/"))
        .collect();
    // console.css, vendor/xterm.css, recording.css, app.js, favicon.svg.
    assert_eq!(assets.len(), 5, "{body}");
    for a in assets {
        let (status, h, _) = raw_get(d.admin_port, a, "");
        assert!(status.contains(" 200 "), "{a}: {status}");
        let want = match a.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "image/svg+xml",
        };
        assert_eq!(header(&h, "content-type"), want, "{a}");
        assert!(header(&h, "cache-control").contains("immutable"), "{a}");
        assert_eq!(header(&h, "x-content-type-options"), "nosniff");
        assert!(header(&h, "content-security-policy").contains("frame-ancestors 'none'"));
    }
    let (status, _, _) = raw_get(d.admin_port, "/console/0123456789abcdef/app.js", "");
    assert!(status.contains(" 404 "), "{status}");
    // The API still wants its token.
    assert_eq!(d.get("/v1/sessions", None).unwrap().status, 401);
}

#[test]
fn admin_watches_a_tunneled_session_count_down_and_revokes_it_through_the_dialog() {
    let t = Tunnel::start();
    let Some(b) = Browser::start(&t.d.url()) else {
        return;
    };
    let (gid, secret) = t.grant(BOB, "auto-echo", "5m");
    let c = t.connect("auto-echo", &secret);
    let mut s = c.open();
    echo(&mut s, b"through the tunnel");
    let sid = session_id_of(&t.d, &gid, &[]);

    b.goto("/");
    b.find("#token");
    b.screenshot("signin");
    sign_in(&b, DAVE);
    assert!(b.text("#who").contains("dave · admin"));
    open_page(&b, "sessions");
    let r = row(&sid);
    b.wait_text(&format!("{r} td[data-label=User]"), "bob");
    assert_eq!(b.text(&format!("{r} td[data-label=Target]")), "auto-echo");
    assert_eq!(b.text(&format!("{r} td[data-label=Kind]")), "tcp");
    assert!(b
        .text(&format!("{r} td[data-label=Client]"))
        .starts_with("127.0.0.1:"));
    assert_eq!(b.text(&format!("{r} .status")), "Active");

    // The time-remaining bar is out of the grant's 300 s and counts down
    // locally between polls: its value moves in fractions of a second.
    let bar = format!("{r} progress.remaining");
    let first = b.js(
        "const p = document.querySelector(arguments[0]); return [p.max, p.value]",
        vec![json!(bar)],
    );
    let (max, v0) = (first[0].as_f64().unwrap(), first[1].as_f64().unwrap());
    assert!((299.0..=300.0).contains(&max), "bar max {max}");
    assert!(v0 > 0.0 && v0 <= max, "bar value {v0}");
    b.wait_js(
        "the countdown to move between polls",
        "const p = document.querySelector(arguments[0]); return p.value < arguments[1] && p.value % 1 !== 0",
        vec![json!(bar), json!(v0)],
    );
    let left = b.text(&format!("{r} .left"));
    assert!(
        left.contains("m ") && left.ends_with('s'),
        "time remaining {left}"
    );
    let idle = b.text(&format!("{r} .idle"));
    assert!(idle.ends_with('s'), "idle {idle}");
    b.screenshot("sessions");

    // Phone width: the row is a card, nothing scrolls sideways, actions reachable.
    b.resize(PHONE);
    b.find(&format!("{r} button.revoke"));
    let overflow = b.js(
        "return document.documentElement.scrollWidth - window.innerWidth",
        vec![],
    );
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "page scrolls sideways by {overflow}"
    );
    b.screenshot("sessions-phone");
    b.resize(DESKTOP);

    // The dialog: warning, details, live time remaining, focus inside,
    // Escape closes it and gives focus back to the button.
    b.click(&format!("{r} button.revoke"));
    let text = b.wait_text("dialog[open]", "cannot be undone");
    for part in [
        "immediately",
        "bob",
        "auto-echo",
        "Time remaining",
        &sid,
        &gid,
    ] {
        assert!(text.contains(part), "dialog lacks {part:?}:\n{text}");
    }
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "dialog-reason"
    );
    b.keys(ESCAPE);
    b.wait_js(
        "Escape to close the dialog",
        "return !document.getElementById('dialog').open",
        vec![],
    );
    assert_eq!(
        b.js(
            "return document.activeElement.matches(arguments[0])",
            vec![json!(format!("{r} button.revoke"))]
        ),
        true,
        "focus did not return to the Revoke button"
    );
    // Keyboard only: Enter on the focused button opens it again.
    b.keys(ENTER);
    b.wait_text("dialog[open]", "cannot be undone");
    b.type_into("#dialog-reason", "INC-42 closed");
    b.screenshot("revoke-dialog");
    b.click("dialog[open] button[type=submit]");

    // The row stays briefly with its reason, then goes.
    b.wait_text(
        &format!("{r} .status"),
        "grant revoked by dave (INC-42 closed)",
    );
    b.wait_text(".flash", "1 session closed");
    b.wait_gone(&r);

    // The tunneled socket was closed by the proxy, and the API agrees.
    assert!(
        closed_by_peer(&mut s),
        "tunneled socket still open after revoke"
    );
    let g =
        t.d.get(&format!("/v1/grants/{gid}"), Some(DAVE))
            .unwrap()
            .json();
    assert_eq!(g["state"], "revoked", "{g}");
    assert_eq!(g["ended_by"], "dave");
    assert_eq!(g["end_comment"], "INC-42 closed");
    assert!(sessions_of(&t.d).is_empty());

    // Grants and Audit show it, read-only.
    open_page(&b, "grants");
    let gr = format!("tr[data-grant-id=\"{gid}\"]");
    b.wait_text(&format!("{gr} .state"), "revoked");
    assert_eq!(
        b.text(&format!("{gr} td[data-label=Comment]")),
        "INC-42 closed"
    );
    assert!(!b.exists("main button.revoke"));
    b.screenshot("grants");

    open_page(&b, "audit");
    b.wait_text("#chain-status[data-ok=true]", "Chain verified");
    b.find("tr[data-action=\"grant.revoked\"]");
    b.wait_js(
        "the session end to reach the audit page",
        "return document.querySelector('tr[data-action=\"session.ended\"]') !== null",
        vec![],
    );
    b.screenshot("audit");
    assert_no_problems(&b);
}

#[test]
fn terminate_ends_one_session_and_bulk_revoke_ends_the_selected_grants() {
    let t = Tunnel::start();
    let Some(b) = Browser::start(&t.d.url()) else {
        return;
    };
    let (g1, s1) = t.grant(BOB, "auto-echo", "5m");
    let (g2, s2) = t.grant(ALICE, "auto-echo", "5m");
    let c1 = t.connect("auto-echo", &s1);
    let c2 = t.connect("auto-echo", &s2);
    let mut a = c1.open();
    echo(&mut a, b"a");
    let sa = session_id_of(&t.d, &g1, &[]);
    let mut a2 = c1.open();
    echo(&mut a2, b"a2");
    let sa2 = session_id_of(&t.d, &g1, std::slice::from_ref(&sa));
    let mut z = c2.open();
    echo(&mut z, b"z");
    let sz = session_id_of(&t.d, &g2, &[]);

    sign_in(&b, DAVE);
    open_page(&b, "sessions");
    for s in [&sa, &sa2, &sz] {
        b.find(&row(s));
    }
    b.screenshot("sessions-several");

    // Terminate one session: only that socket closes; the grant lives on.
    b.click(&format!("{} button.terminate", row(&sa)));
    let text = b.wait_text("dialog[open]", "cannot be undone");
    assert!(text.contains("The grant stays active"), "{text}");
    b.type_into("#dialog-reason", "runaway job");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(
        &format!("{} .status", row(&sa)),
        "terminated by dave (runaway job)",
    );
    b.screenshot("sessions-ended");
    assert!(closed_by_peer(&mut a));
    echo(&mut a2, b"still here");
    b.wait_gone(&row(&sa));

    // Select the rest and revoke both grants at once.
    b.click("#select-all");
    b.wait_text("#bulk-revoke", "Revoke selected grants (2)");
    b.click("#bulk-revoke");
    let text = b.wait_text("dialog[open]", "cannot be undone");
    assert!(text.contains(&g1) && text.contains(&g2), "{text}");
    b.type_into("#dialog-reason", "incident over");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "Revoked 2 grants: 2 sessions closed");
    b.wait_gone(&row(&sa2));
    b.wait_gone(&row(&sz));
    assert!(closed_by_peer(&mut a2));
    assert!(closed_by_peer(&mut z));
    for g in [&g1, &g2] {
        let v =
            t.d.get(&format!("/v1/grants/{g}"), Some(DAVE))
                .unwrap()
                .json();
        assert_eq!(v["state"], "revoked", "{v}");
        assert_eq!(v["end_comment"], "incident over");
    }
    assert_no_problems(&b);
}

#[test]
fn approver_approves_and_denies_from_the_requests_page_and_sees_a_409_readably() {
    let d = Daemon::start();
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    let bob = d.create_request(BOB, "cache", "30m");
    let alice = d.create_request(ALICE, "cache", "45m");
    let own = d.create_request(CAROL, "cache", "10m");
    let rid = |r: &Value| r["id"].as_str().unwrap().to_string();
    let req_row = |id: &str| format!("tr[data-request-id=\"{id}\"]");

    sign_in(&b, CAROL);
    b.wait_text("#nav a[aria-current=page]", "Requests");
    b.find(&format!("{} button.approve", req_row(&rid(&bob))));
    b.find(&format!("{} button.deny", req_row(&rid(&alice))));
    // Her own request is listed apart, without buttons.
    let mine = req_row(&rid(&own));
    b.wait_text(&format!("section.others {mine}"), "Your own request");
    assert!(!b.exists(&format!("{mine} button")));
    b.screenshot("requests");

    // Approve with a comment.
    b.click(&format!("{} button.approve", req_row(&rid(&bob))));
    let text = b.wait_text("dialog[open]", "bob gets access to cache for 30m");
    assert!(text.contains("INC-7"), "{text}");
    b.type_into("#dialog-reason", "looks right");
    b.click("dialog[open] button[type=submit]");
    b.wait_text(".flash", "Approved bob's request for cache");
    b.wait_gone(&req_row(&rid(&bob)));
    let r = d
        .get(&format!("/v1/requests/{}", rid(&bob)), Some(CAROL))
        .unwrap()
        .json();
    assert_eq!(r["state"], "approved", "{r}");
    assert_eq!(r["approvals"][0]["approver"], "carol");
    assert_eq!(r["approvals"][0]["comment"], "looks right");
    assert_eq!(r["grant"]["state"], "active");

    // Deny needs a reason: without one the dialog says so and stays open.
    b.click(&format!("{} button.deny", req_row(&rid(&alice))));
    b.wait_text("dialog[open]", "Deny alice's request");
    b.click("dialog[open] button[type=submit]");
    b.wait_text("dialog[open] .dialog-error", "A reason is required");
    assert_eq!(
        b.js("return document.activeElement.id", vec![]),
        "dialog-reason"
    );
    b.type_into("#dialog-reason", "not during the freeze");
    b.click("dialog[open] button[type=submit]");
    b.wait_gone(&req_row(&rid(&alice)));
    let r = d
        .get(&format!("/v1/requests/{}", rid(&alice)), Some(CAROL))
        .unwrap()
        .json();
    assert_eq!(r["state"], "denied", "{r}");
    assert_eq!(r["decision_reason"], "not during the freeze");

    // Erin approves while Carol's dialog is open: Carol gets a readable 409.
    let again = d.create_request(ALICE, "cache", "15m");
    let ar = req_row(&rid(&again));
    b.click(&format!("{ar} button.approve"));
    b.wait_text("dialog[open]", "alice gets access");
    let r = d
        .post(
            &format!("/v1/requests/{}/approve", rid(&again)),
            Some(ERIN),
            "{}",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    b.click("dialog[open] button[type=submit]");
    let err = b.wait_text("dialog[open] .dialog-error", "409");
    assert!(err.contains("Already changed"), "{err}");
    assert!(err.contains("approved"), "{err}");
    // No retry button for a final answer; Close is focused.
    assert!(!b.exists("dialog[open] button[type=submit]:not([hidden])"));
    assert_eq!(
        b.js("return document.activeElement.textContent", vec![]),
        "Close"
    );
    b.screenshot("requests-409");
    b.keys(ENTER);
    b.wait_js(
        "the dialog to close",
        "return !document.getElementById('dialog').open",
        vec![],
    );
    b.wait_gone(&ar);
    assert_no_problems(&b);
}

#[test]
fn a_viewer_without_rights_sees_403_messages_instead_of_buttons() {
    let d = Daemon::start();
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    let alice = d.create_request(ALICE, "cache", "30m");
    let own = d.create_request(BOB, "cache", "30m");

    sign_in(&b, BOB);
    assert!(b.text("#who").contains("bob · requester"));
    // A requester lands on My access; the overseers' pages still open by URL.
    b.wait_text("#nav a[aria-current=page]", "My access");
    b.goto("/#/requests");
    let msg = b.wait_text(".forbidden", "403");
    assert!(msg.contains("bob is not an approver"), "{msg}");
    // Bob's own request is listed, read-only; Alice's is not his to see.
    b.wait_text(
        &format!("tr[data-request-id=\"{}\"]", own["id"].as_str().unwrap()),
        "Your own request",
    );
    assert!(!b.exists(&format!(
        "tr[data-request-id=\"{}\"]",
        alice["id"].as_str().unwrap()
    )));
    assert!(!b.exists("button.approve") && !b.exists("button.deny"));
    b.screenshot("forbidden-requests");

    // The audit log is for approvers and admins: the API's 403, in words.
    b.goto("/#/audit");
    let msg = b.wait_text(
        ".notice.error[data-status=\"403\"]",
        "Not allowed (403 Forbidden)",
    );
    assert!(
        msg.contains("the audit log is readable by admins and approvers"),
        "{msg}"
    );
    assert!(!b.exists("main table:not([hidden])"));
    b.screenshot("forbidden-audit");
    assert_no_problems(&b);
}

#[test]
fn a_bad_token_gets_a_readable_401_and_is_not_kept() {
    let d = Daemon::start();
    let Some(b) = Browser::start(&d.url()) else {
        return;
    };
    b.goto("/");
    b.type_into("#token", "jgt_not_a_real_token");
    b.click("form.signin button[type=submit]");
    let msg = b.wait_text("#signin-status", "401");
    assert!(msg.contains("That token was not accepted"), "{msg}");
    assert_eq!(
        b.js("return sessionStorage.getItem('jitgate.token')", vec![]),
        Value::Null
    );
    assert!(b.js("return document.getElementById('nav').hidden", vec![]) == json!(true));
    b.screenshot("signin-401");

    // Signed in, then the token stops working: back to sign-in, with why.
    sign_in(&b, ERIN);
    assert_eq!(
        b.js("return sessionStorage.getItem('jitgate.token')", vec![]),
        json!(ERIN)
    );
    b.js(
        "sessionStorage.setItem('jitgate.token', 'jgt_revoked'); return true",
        vec![],
    );
    b.goto("/");
    let msg = b.wait_text("#signin-status", "no longer accepted");
    assert!(msg.contains("401"), "{msg}");
    assert_eq!(
        b.js("return sessionStorage.getItem('jitgate.token')", vec![]),
        Value::Null
    );
    // Signing out forgets the token too.
    sign_in(&b, ERIN);
    b.click("#signout");
    b.wait_text("#signin-status", "Signed out");
    assert_eq!(
        b.js("return sessionStorage.getItem('jitgate.token')", vec![]),
        Value::Null
    );
    assert_no_problems(&b);
}
