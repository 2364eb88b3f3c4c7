//! The console's Watch and Recordings pages in a real headless Chromium
//! against a real sshd (SPEC "Web console", Recording): an approver watches
//! a live pty session's output (ANSI colour rendered by the terminal) while
//! its command still runs, then its end; the same session replays in the
//! player with the output it had; the engineer gets no Watch button and the
//! API's 403 by URL; both pages pass axe; nothing breaks the CSP.

use crate::common;

use common::a11y;
use common::browser::Browser;
use common::console_watch::{as_user, no_csp_violation};
use common::daemon::*;
use common::recording::*;
use common::sshproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use serde_json::json;
use std::process::Stdio;

/// A target whose grants need one approval from the leads (carol, erin).
const APPROVED: &str = r#"
[[policies]]
name = "recpol"
requesters = ["group:oncall"]
targets = ["rec-*"]
approvers = ["group:leads"]
approvals_required = 1
max_duration = "10m"
"#;

/// The terminal's rows as the page shows them.
fn screen(b: &Browser, css: &str) -> String {
    b.js(
        "const r = document.querySelector(arguments[0] + ' .xterm-rows'); return r ? r.innerText : ''",
        vec![json!(css)],
    )
    .as_str()
    .unwrap_or_default()
    .replace('\u{a0}', " ")
}

fn wait_screen(b: &Browser, css: &str, part: &str) -> String {
    b.wait_js(
        &format!("the terminal in {css} to show {part:?}"),
        "const r = document.querySelector(arguments[0] + ' .xterm-rows'); \
         return r && r.innerText.replace(/\\u00a0/g, ' ').includes(arguments[1]) ? r.innerText : null",
        vec![json!(css), json!(part)],
    );
    screen(b, css)
}

#[test]
fn an_approver_watches_a_live_ssh_session_and_replays_it_the_engineer_may_not() {
    let Some(p) = SshProxy::start_with_targets(
        &(APPROVED.to_string() + &section("terminal", "refuse")),
        &["rec-host"],
    ) else {
        return;
    };
    let Some(b) = Browser::start(&p.d.url()) else {
        return;
    };
    let r = p.d.request(BOB, "rec-host", "5m", "INC-1");
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(p.d.approve(&gid, CAROL).status, 200);

    // The first part in red, the second only once the test makes the flag.
    let flag = p.sshd.work.join("console-watch-flag");
    let cmd = format!(
        "printf '\\033[31mfirst-part\\033[0m\\n'; while [ ! -e {} ]; do sleep 0.1; done; echo second-part",
        flag.display()
    );
    let mut session = p
        .ssh("rec-host", &["-tt", &cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sid = String::new();
    wait_for("the live session", || {
        let s = p.d.get("/v1/sessions", Some(DAVE)).unwrap().json();
        match s["sessions"][0]["id"].as_str() {
            Some(id) => {
                sid = id.to_string();
                true
            }
            None => false,
        }
    });

    // The engineer: no Watch, and the API's refusal by URL.
    as_user(&b, BOB, "#/sessions");
    sse_parser_handles_split_chunks(&b);
    b.wait_js(
        "bob's sessions page",
        "return document.querySelector('main h1')?.textContent === 'Active Sessions' && !document.querySelector('main .loading')",
        vec![],
    );
    assert!(!b.exists("a.watch"), "the engineer is offered Watch");
    b.goto(&format!("/#/watch?session={sid}"));
    b.wait_text("#watch-status", "403");
    let banner = b.text("main .notice.error");
    assert!(
        banner.contains("only admins and approvers"),
        "the API's own refusal: {banner}"
    );
    assert!(!b.exists(".xterm-rows"), "no terminal for the engineer");
    no_csp_violation(&b, "watch (refused)");

    // The approver watches from Active Sessions while the command runs.
    as_user(&b, CAROL, "#/sessions");
    b.click(&format!("tr[data-session-id=\"{sid}\"] a.watch"));
    b.wait_text("#watch-status", "Live");
    let live = wait_screen(&b, "#watch-view", "first-part");
    assert!(!live.contains("second-part"), "{live}");
    // ANSI colour is rendered, not printed: red (colour 1) on that text.
    let red = b.js(
        "return [...document.querySelectorAll('#watch-view .xterm-rows span.xterm-fg-1')].map(s => s.textContent).join('')",
        vec![],
    );
    assert_eq!(red, json!("first-part"), "the red text");
    assert!(!live.contains("[31m"), "{live}");
    b.find("#watch-terminate");
    a11y::assert_clean(&b, "Watch (SSH, live)");
    b.screenshot("watch-ssh");

    std::fs::write(&flag, b"").unwrap();
    assert!(wait_status(&mut session, HANG).success());
    wait_screen(&b, "#watch-view", "second-part");
    b.wait_text("#watch-status", "has ended");
    assert_eq!(
        b.js(
            "return document.getElementById('watch-terminate').disabled",
            vec![]
        ),
        json!(true)
    );
    no_csp_violation(&b, "watch");

    // The recording replays into the player's terminal.
    wait_for("session.ended", || !ended_events(&p.audit()).is_empty());
    b.click("#nav a[data-page=recordings]");
    b.click(&format!("tr[data-session-id=\"{sid}\"] button.play"));
    b.find("#player-speed");
    b.js(
        "const s = document.getElementById('player-speed'); s.value = '8'; s.dispatchEvent(new Event('change')); return true",
        vec![],
    );
    b.wait_js(
        "the replay to finish",
        "return document.getElementById('player-status')?.dataset.done === 'true'",
        vec![],
    );
    // xterm.js parses and paints a frame after the last write.
    let replay = wait_screen(&b, "#player-view", "second-part");
    let lines: Vec<&str> = replay
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines, ["first-part", "second-part"], "{replay:?}");
    let red = b.js(
        "return [...document.querySelectorAll('#player-view .xterm-rows span.xterm-fg-1')].map(s => s.textContent).join('')",
        vec![],
    );
    assert_eq!(red, json!("first-part"));
    a11y::assert_clean(&b, "Recordings with the player");
    b.screenshot("recordings-player");
    no_csp_violation(&b, "recordings");
}

/// The console's own SSE parser (EventSource cannot send the bearer
/// header): events split across chunks anywhere, CRLF split between two
/// chunks, comments, multi-line data, and a named event.
fn sse_parser_handles_split_chunks(b: &Browser) {
    let got = b.js(
        "const src = document.querySelector('script[type=module]').src.replace(/app\\.js$/, 'sse.js'); \
         return import(src).then((m) => { const got = []; const feed = m.parseSse((e) => got.push([e.event, e.data])); \
         for (const c of ['da', 'ta: [0.5, \"o\", \"a\"]\\r', '\\n\\r\\n: keep-alive\\n\\ndata: x\\ndata:y\\n', '\\nevent: end\\ndata: {}\\n\\n', 'data: a\\r', '\\ndata: b\\n\\n', 'data: cut']) feed(c); \
         return got; })",
        vec![],
    );
    assert_eq!(
        got,
        json!([
            ["message", "[0.5, \"o\", \"a\"]"],
            ["message", "x\ny"],
            ["end", "{}"],
            ["message", "a\nb"]
        ])
    );
}
