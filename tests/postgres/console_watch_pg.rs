//! The console's Watch for a PostgreSQL session in a real headless
//! Chromium (SPEC "Web console", Recording): statements run through a live
//! psql appear in the statement stream while the session is open, with
//! rows and SQLSTATE; Terminate beside it closes the session and the page
//! says it ended; the finished session shows the same
//! statements on the Recordings page; axe clean; no CSP violation.

use crate::common;

use common::a11y;
use common::browser::Browser;
use common::console_watch::{as_user, no_csp_violation};
use common::daemon::*;
use common::pgproxy::*;
use common::recording::*;
use common::tunnel::wait_for;
use common::wait::*;
use serde_json::json;
use std::io::Write;
use std::process::Stdio;

/// The statement table's rows as [statement, rows, sqlstate].
fn statements(b: &Browser, table: &str) -> serde_json::Value {
    b.js(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map((tr) => \
         [...tr.querySelectorAll('td')].map((td) => td.innerText.trim())).map((c) => [c[1], c[3], c[4]])",
        vec![json!(table)],
    )
}

#[test]
fn an_admin_watches_psql_statements_live_then_reads_them_in_recordings() {
    let Some(p) = PgProxy::start_more(false, &section("off", "refuse")) else {
        return;
    };
    let Some(b) = Browser::start(&p.d.url()) else {
        return;
    };
    let (_gid, secret) = bob_grant(&p);
    let mut psql = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        // Carry on after the failing statement, so the session stays open.
        .args(["-v", "ON_ERROR_STOP=0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = psql.stdin.take().unwrap();
    input
        .write_all(b"SELECT 40 + 2 AS answer;\n")
        .and_then(|_| input.flush())
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

    as_user(&b, DAVE, "#/sessions");
    b.click(&format!("tr[data-session-id=\"{sid}\"] a.watch"));
    b.wait_text("#watch-status", "Live");
    b.wait_text("#watch-view table.statements", "SELECT 40 + 2 AS answer");
    // A statement sent after the page opened arrives while psql is open.
    input
        .write_all(b"SELECT * FROM watch_missing_table;\n")
        .and_then(|_| input.flush())
        .unwrap();
    b.wait_text("#watch-view table.statements", "watch_missing_table");
    assert_eq!(
        statements(&b, "#watch-view"),
        json!([
            ["SELECT 40 + 2 AS answer;", "1", "—"],
            ["SELECT * FROM watch_missing_table;", "—", "42P01"]
        ])
    );
    b.find("#watch-terminate");
    a11y::assert_clean(&b, "Watch (PostgreSQL, live)");
    b.screenshot("watch-postgres");

    // Terminate beside it: the dialog, a reason, the session closed.
    b.click("#watch-terminate");
    b.wait_text("dialog[open] #dialog-warning", "cannot be undone");
    b.type_into("#dialog-reason", "watched enough");
    b.click("dialog[open] button[type=submit]");
    b.wait_text("#watch-status", "has ended");
    wait_for("the session closed", || {
        p.d.get("/v1/sessions", Some(DAVE)).unwrap().json()["sessions"] == json!([])
    });
    assert!(
        p.d.get("/v1/audit?limit=1000", Some(DAVE))
            .unwrap()
            .body
            .contains("watched enough"),
        "the reason is in the audit"
    );
    drop(input);
    let o = wait_output(psql, HANG);
    let (_, se) = text(&o);
    assert!(se.contains("watch_missing_table"), "{se}");
    no_csp_violation(&b, "watch (PostgreSQL)");

    wait_for("session.ended", || {
        !ended_events(&p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body).is_empty()
    });
    b.click("#nav a[data-page=recordings]");
    b.click(&format!("tr[data-session-id=\"{sid}\"] button.play"));
    b.wait_text("#player-status", "2 statements");
    assert_eq!(statements(&b, "#player-view"), statements_expected());
    a11y::assert_clean(&b, "Recordings (PostgreSQL)");
    no_csp_violation(&b, "recordings (PostgreSQL)");
}

fn statements_expected() -> serde_json::Value {
    json!([
        ["SELECT 40 + 2 AS answer;", "1", "—"],
        ["SELECT * FROM watch_missing_table;", "—", "42P01"]
    ])
}
