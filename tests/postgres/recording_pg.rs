//! PostgreSQL sessions recorded as one JSON line per statement (SPEC
//! "Recording"): psql's simple queries and COPY, tokio-postgres's prepared
//! statements, rows and SQLSTATEs, parameters never; the engineer told by
//! a NoticeResponse; each recording sealed by its digest.

use crate::common;

use common::daemon::*;
use common::pgproxy::*;
use common::recording::*;
use common::tunnel::wait_for;
use common::wait::*;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn audit(p: &PgProxy) -> String {
    p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body
}

#[test]
fn psql_and_prepared_statements_are_recorded_with_rows_and_errors() {
    let Some(p) = PgProxy::start_more(false, &section("off", "refuse")) else {
        return;
    };
    let (_gid, secret) = bob_grant(&p);
    let mut c = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        .args([
            "-c",
            "CREATE TABLE rec_t (a int)",
            "-c",
            "INSERT INTO rec_t SELECT generate_series(1, 3)",
            "-c",
            "COPY rec_t FROM STDIN",
            "-c",
            "SELECT count(*) FROM rec_t",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.as_mut().unwrap().write_all(b"4\n5\n\\.\n").unwrap();
    drop(c.stdin.take());
    let o = wait_output(c, HANG);
    let (so, se) = text(&o);
    assert!(o.status.success(), "{so} {se}");
    assert!(so.trim().ends_with("\n5"), "{so}");
    assert!(se.contains("jitgate: this session is recorded"), "{se}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (client, conn) = p.tokio_postgres("bob@auto-db", &secret).await.unwrap();
        let driver = tokio::spawn(conn);
        let st = client
            .prepare("SELECT a FROM rec_t WHERE a <> $1 ORDER BY a")
            .await
            .unwrap();
        let rows = client.query(&st, &[&424242i32]).await.unwrap();
        assert_eq!(rows.len(), 5);
        let rows = client.query(&st, &[&3i32]).await.unwrap();
        assert_eq!(rows.len(), 4);
        let e = client
            .query("SELECT * FROM rec_missing_table", &[])
            .await
            .unwrap_err();
        assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
        drop(client);
        let _ = driver.await;
    });

    let mut events = Vec::new();
    wait_for("two session.ended events", || {
        events = ended_events(&audit(&p));
        events.len() >= 2
    });
    let mut all = Vec::new();
    for e in &events {
        let sid = e["subject"].as_str().unwrap();
        let path = dir(&p.d.dir).join(format!("{sid}.ndjson"));
        let d = detail(e);
        assert_eq!(d["recording_sha256"], sha256_hex(&path), "{d}");
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(
            !raw.contains("424242"),
            "parameters must not be recorded: {raw}"
        );
        all.extend(lines(&path));
    }
    let find = |text: &str| {
        all.iter()
            .filter(|l| l["statement"] == text)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find("INSERT INTO rec_t SELECT generate_series(1, 3)")[0]["rows"],
        3
    );
    assert_eq!(find("COPY rec_t FROM STDIN")[0]["rows"], 2, "{all:?}");
    let count = &find("SELECT count(*) FROM rec_t")[0];
    assert_eq!(count["rows"], 1);
    assert!(count["sqlstate"].is_null());
    assert!(count["duration_ms"].as_f64().is_some());
    assert!(count["at"].as_str().unwrap().ends_with('Z'));
    let prepared = find("SELECT a FROM rec_t WHERE a <> $1 ORDER BY a");
    let rows: Vec<&Value> = prepared.iter().map(|l| &l["rows"]).collect();
    assert_eq!(rows, [5, 4], "{all:?}");
    let failed = find("SELECT * FROM rec_missing_table");
    assert_eq!(failed.len(), 1, "{all:?}");
    assert_eq!(failed[0]["sqlstate"], "42P01");
    // Replayed as text by an admin; the engineer may not.
    let sids: Vec<&str> = events
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    let shown: String = sids
        .iter()
        .map(|sid| {
            let o = p.d.cli(DAVE, &["play", sid]);
            assert!(o.status.success(), "{o:?}");
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    assert!(shown.contains("rows=2  COPY rec_t FROM STDIN"), "{shown}");
    assert!(
        shown.contains("ERROR 42P01  SELECT * FROM rec_missing_table"),
        "{shown}"
    );
    let o = p.d.cli(BOB, &["play", sids[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("403"), "{o:?}");
}
