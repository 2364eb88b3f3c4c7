//! The PostgreSQL front end against a real server with real clients: psql
//! and tokio-postgres through the proxy, and no backend left working when a
//! grant ends.

use crate::common;

use common::daemon::*;
use common::pgproxy::*;
use common::tunnel::wait_for;
use common::wait::*;
use std::time::{Duration, Instant};

#[test]
fn psql_through_the_proxy_runs_as_the_target_role_tagged_with_the_session() {
    let Some(p) = PgProxy::start() else { return };
    let (_gid, secret) = bob_grant(&p);
    let o = p
        .psql_command(&p.conninfo("bob@auto-db", "channel_binding=require"), &secret)
        .args([
            "-c",
            "SELECT current_user, current_database(), application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
        ])
        .output_within(HANG);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let row: Vec<&str> = out.trim().split('|').collect();
    assert_eq!(row[0], p.role);
    assert_eq!(row[1], p.db);
    assert!(row[2].starts_with("jitgate:bob:ses_"), "{out}");

    // The session and its backend pid are in the audit log.
    wait_for("session audit events with the backend pid", || {
        let a = p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
        a.contains("session.ended") && a.contains("backend_pid")
    });
    let m = p.d.metrics();
    assert!(
        m.contains(r#"jitgate_sessions_started_total{kind="postgres",target="auto-db"} 1"#),
        "{m}"
    );
}

#[test]
fn revoking_during_a_long_query_delivers_fatal_and_leaves_no_backend() {
    let Some(p) = PgProxy::start() else { return };
    let (gid, secret) = bob_grant(&p);
    let child = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        .args(["-c", "SELECT pg_sleep(600)"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the query to run upstream", || {
        p.backends()
            .iter()
            .any(|b| b.contains("|active|SELECT pg_sleep(600)"))
    });
    assert_eq!(p.d.revoke(&gid, "INC-42 closed"), 1);
    let revoked = Instant::now();
    let o = common::wait_output(child, HANG);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "FATAL:  terminating connection: access to auto-db ended: grant revoked by dave (INC-42 closed)"
        ),
        "{err}"
    );
    // No backend keeps working: the query was cancelled and the backend left.
    wait_for("the backend to exit", || p.backends().is_empty());
    assert!(
        revoked.elapsed() < Duration::from_secs(10),
        "backend lingered {:?}",
        revoked.elapsed()
    );
    let logs = p.d.logs();
    assert!(
        logs.contains("cancelled the running query upstream"),
        "{logs}"
    );
}

#[test]
fn expiry_during_a_query_ends_it_the_same_way() {
    let Some(p) = PgProxy::start() else { return };
    // Long enough for psql to start and log in before the end on a loaded
    // machine (a login after it is refused, which is another test).
    let (_gid, secret) = p.grant(BOB, "auto-db", "12s");
    let o = p.psql("bob@auto-db", &secret, "SELECT pg_sleep(600)");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("terminating connection: access to auto-db ended: grant expired"),
        "{err}"
    );
    wait_for("the backend to exit", || p.backends().is_empty());
    // A new login after expiry is refused with a clear reason.
    let o = p.psql("bob@auto-db", &secret, "SELECT 1");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("password authentication failed"), "{err}");
}

/// Before authentication every refusal reads the same, so a client cannot
/// learn which targets, users or grants exist: an unknown target, an unknown
/// user, a known user without a grant and a wrong secret all get 28P01
/// "password authentication failed" and one hint, byte for byte (the user
/// name aside); the real reason is in the log and the audit.
#[test]
fn refusals_before_authentication_are_identical() {
    let Some(p) = PgProxy::start() else { return };
    let (_gid, secret) = bob_grant(&p);
    let cases = [
        ("bob@nosuch", secret.as_str(), "unknown target nosuch"),
        (
            "mallory@auto-db",
            secret.as_str(),
            "no active grant for mallory",
        ),
        (
            "alice@auto-db",
            secret.as_str(),
            "no active grant with a connect secret for alice",
        ),
        ("bob@auto-db", "jgc_wrong", "wrong connect secret"),
    ];
    let mut seen = Vec::new();
    for (user, pw, _) in cases {
        let o = p
            .psql_command(&p.conninfo(user, ""), pw)
            .args(["-v", "VERBOSITY=verbose", "-c", "SELECT 1"])
            .output_within(HANG);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{user}: {err}");
        assert!(
            err.contains(&format!(
                "password authentication failed for user \"{user}\""
            )),
            "{user}: {err}"
        );
        assert!(
            err.contains("jitgate grants --state active"),
            "{user}: {err}"
        );
        // From the FATAL on: what the server said, the user name masked.
        let from = err.find("FATAL").unwrap_or(0);
        seen.push(err[from..].replace(user, "USER"));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:#?}");
    // The details are for the operator. Failed logins are audited off the
    // connection's task, so the last one may land a moment later.
    let all_there = || {
        let logs = p.d.logs();
        let audit = p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
        cases
            .iter()
            .all(|(_, _, d)| logs.contains(d) && audit.contains(d))
    };
    common::tunnel::wait_for("every refusal's detail in the log and the audit", all_there);
}

#[test]
fn refusals_that_reveal_nothing_keep_their_own_message() {
    let Some(p) = PgProxy::start() else { return };
    let (_gid, secret) = bob_grant(&p);
    let o = p.psql("bob", &secret, "SELECT 1");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("connect as USER@TARGET"), "{err}");
    // Plaintext is refused unless the config allows it.
    let o = p
        .psql_command(
            &format!(
                "host=localhost port={} user=bob@auto-db dbname={} sslmode=disable",
                p.port, p.db
            ),
            &secret,
        )
        .args(["-c", "SELECT 1"])
        .output_within(HANG);
    let (_, err) = text(&o);
    assert!(err.contains("jitgate requires TLS"), "{err}");
    let o = p.psql("bob@auto-db", "jgc_wrong", "SELECT 1");
    assert_eq!(o.status.code(), Some(2));
    let m = p.d.metrics();
    assert!(
        m.contains(r#"jitgate_connections_rejected_total{kind="postgres",reason="auth_failed"} 1"#),
        "{m}"
    );
    // Failed logins are audited off the connection's path.
    wait_for("the auth.failed audit event", || {
        p.d.get("/v1/audit?limit=1000", Some(DAVE))
            .unwrap()
            .body
            .contains("auth.failed")
    });
}

#[test]
fn wrong_secrets_in_a_loop_are_rate_limited() {
    let Some(p) = PgProxy::start() else { return };
    let (_gid, secret) = bob_grant(&p);
    let mut saw_limit = false;
    for _ in 0..8 {
        let o = p.psql("bob@auto-db", "jgc_guess", "SELECT 1");
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2));
        saw_limit |= err.contains("too many failed authentication attempts");
    }
    assert!(saw_limit, "no rate limit after 8 wrong secrets");
    // Even the right secret is refused while blocked.
    let o = p.psql("bob@auto-db", &secret, "SELECT 1");
    assert!(text(&o).1.contains("too many failed"), "{:?}", text(&o));
}

#[test]
fn max_sessions_refuses_the_second_session_with_53300() {
    let Some(p) = PgProxy::start() else { return };
    let (_gid, secret) = p.grant(BOB, "few-db", "5m");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (c1, conn1) = p.tokio_postgres("bob@few-db", &secret).await.unwrap();
        tokio::spawn(conn1);
        c1.simple_query("SELECT 1").await.unwrap();
        let e = match p.tokio_postgres("bob@few-db", &secret).await {
            Ok(_) => panic!("a second session was admitted"),
            Err(e) => e,
        };
        let db = e.as_db_error().expect("db error");
        assert_eq!(db.code().code(), "53300", "{db}");
    });
}

#[test]
fn tokio_postgres_extended_protocol_cancel_and_warnings() {
    use futures_util::StreamExt;
    let Some(p) = PgProxy::start() else { return };
    // Long enough for the connect, the rows and the cancel below to be over
    // before the warning on a loaded machine: a grant that ends first
    // turns the cancel's error into its FATAL.
    let (_gid, secret) = p.grant(BOB, "warn-db", "15s");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (client, mut conn) = p.tokio_postgres("bob@warn-db", &secret).await.unwrap();
        let (tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(m) = stream.next().await {
                match m {
                    Ok(tokio_postgres::AsyncMessage::Notice(n)) => {
                        let _ = tx.send(n.message().to_string());
                    }
                    Ok(_) => {}
                    Err(e) => return Some(e),
                }
            }
            None
        });
        // Prepared statements, parameters, many rows.
        let stmt = client
            .prepare("SELECT g, repeat('x', $1::int) FROM generate_series(1, 5000) g")
            .await
            .unwrap();
        let rows = client.query(&stmt, &[&100i32]).await.unwrap();
        assert_eq!(rows.len(), 5000);
        assert_eq!(rows[4999].get::<_, i32>(0), 5000);

        // Client-side cancel through the proxy's minted key, sent once the
        // query runs (a cancel that reaches an idle backend cancels nothing).
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let token = client.cancel_token();
        let tls = p.tls();
        let cluster = p.cluster;
        let canceller = tokio::spawn(async move {
            tokio::task::spawn_blocking(move || {
                common::pg_activity::wait_active(cluster, pid, "SELECT pg_sleep(30)")
            })
            .await
            .unwrap();
            token.cancel_query(tls).await
        });
        let e = client
            .simple_query("SELECT pg_sleep(30)")
            .await
            .unwrap_err();
        assert_eq!(
            e.as_db_error().map(|d| d.code().code()),
            Some("57014"),
            "{e}"
        );
        canceller.await.unwrap().unwrap();

        // The warn_before notice arrives ~3 s before the end, then the FATAL.
        let warned = tokio::time::timeout(Duration::from_secs(60), notices.recv())
            .await
            .expect("no warning")
            .unwrap();
        assert!(
            warned.contains("jitgate: access to warn-db ends in 3s"),
            "{warned}"
        );
        let ended = tokio::time::timeout(Duration::from_secs(60), driver)
            .await
            .expect("connection not closed")
            .unwrap()
            .expect("an error ends the connection");
        let db = ended.as_db_error().expect("FATAL from the proxy");
        assert_eq!(db.code().code(), "57P01");
        assert_eq!(db.severity(), "FATAL");
        assert!(db.message().contains("grant expired"), "{}", db.message());
    });
}

#[test]
fn interactive_psql_on_a_pty_sees_the_farewell_and_cannot_reconnect() {
    use std::io::Write;
    use std::process::Stdio;
    let Some(p) = PgProxy::start() else { return };
    let (gid, secret) = bob_grant(&p);
    // `script` gives psql a real terminal, so it runs interactively (prompt,
    // and a reset attempt after losing the connection).
    let psql = format!("psql '{}' -X -P pager=off", p.conninfo("bob@auto-db", ""));
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &psql, "/dev/null"])
        .env("PGPASSWORD", &secret)
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = child.stdout.take().unwrap();
    // The prompt has no newline: collect raw output, not lines.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        let mut out = out;
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                return;
            }
            if let Ok(mut s) = sink.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let expect = |what: &str| {
        // A hang bound only: a loaded 2-core machine has taken over 20 s
        // to start a psql child and see its first output.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if seen.lock().unwrap().contains(what) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "psql never printed {what:?}; it printed:\n{}",
            seen.lock().unwrap()
        );
    };
    expect(&format!("{}=>", p.db));
    writeln!(stdin, "SELECT 'still ' || 'here';").unwrap();
    expect("still here");
    assert_eq!(p.d.revoke(&gid, "shift over"), 1);
    // psql notices the lost connection at its next command, shows the
    // farewell, and its automatic reconnect is refused: the grant is gone.
    writeln!(stdin, "SELECT 1;").unwrap();
    expect("access to auto-db ended: grant revoked by dave (shift over)");
    expect("Attempting reset: Failed.");
    writeln!(stdin, "\\q").unwrap();
    drop(stdin);
    wait_status(&mut child, HANG);
}

/// A backend that traps the cancel (a plpgsql loop catching
/// `query_canceled` and committing each turn) is terminated by pid at the
/// revoke: when the revoke returns, its pid has left pg_stat_activity and
/// no more rows are committed.
#[test]
fn a_backend_that_traps_the_cancel_is_gone_when_the_revoke_returns() {
    let Some(p) = PgProxy::start() else { return };
    let (gid, secret) = bob_grant(&p);
    let o = p.psql("bob@auto-db", &secret, "CREATE TABLE ticks (n serial)");
    assert!(o.status.success(), "{:?}", text(&o));
    let trap = "DO $$ BEGIN LOOP BEGIN INSERT INTO ticks DEFAULT VALUES; PERFORM pg_sleep(0.05); \
                EXCEPTION WHEN query_canceled THEN NULL; END; COMMIT; END LOOP; END $$";
    let spawn = || {
        p.psql_command(&p.conninfo("bob@auto-db", ""), &secret)
            .args(["-c", trap])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let count = || -> u64 {
        p.cluster
            .admin_sql_in(&p.db, "SELECT count(*) FROM ticks")
            .trim()
            .parse()
            .unwrap()
    };
    // The looping client must be running before the revoke. Two CI runs
    // saw it never commit a row (its exit not yet explained: see
    // docs/dev-notes.md); a client that exits before looping is reported
    // and started again, at most three times, since what this test checks
    // is the revoke, not that login.
    let looping = || {
        p.backends()
            .iter()
            .find(|b| b.contains("|active|DO $$"))
            .map(|b| b.split('|').next().unwrap_or_default().to_string())
    };
    let mut child = spawn();
    let mut pid = None;
    for attempt in 1..=3 {
        wait_for(
            "the loop to commit rows as a listed backend, or its client to exit",
            || (count() > 2 && looping().is_some()) || child.try_wait().ok().flatten().is_some(),
        );
        pid = looping();
        if pid.is_some() {
            break;
        }
        let backends = p.backends();
        let o = common::wait_output(child, HANG);
        eprintln!(
            "the looping client exited early (attempt {attempt}, {} rows, backends {backends:?}): {:?}",
            count(),
            text(&o)
        );
        assert!(attempt < 3, "the looping client never ran: {:?}", text(&o));
        child = spawn();
    }
    let pid = pid.expect("the looping backend");
    assert_eq!(p.d.revoke(&gid, "trap"), 1);
    let present = || {
        p.cluster
            .admin_sql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
            ))
            .trim()
            .to_string()
    };
    assert_eq!(present(), "0", "backend {pid} outlived the revoke");
    let first = count();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(), first, "rows still committed after the revoke");
    assert_eq!(present(), "0");
    let o = common::wait_output(child, HANG);
    let (_, err) = text(&o);
    assert!(err.contains("FATAL:  terminating connection"), "{err}");
    wait_for("the session.ended audit event", || {
        let a = p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
        a.contains(r#""backend_confirmed_gone":true"#)
    });
    assert!(p.d.logs().contains("backend confirmed gone"));
}

/// When the backend cannot be confirmed gone (here the side connection is
/// refused: the role's CONNECTION LIMIT is taken by the session itself),
/// the revoke still returns, the log warns and the audit says so.
#[test]
fn a_backend_not_confirmed_gone_is_audited_and_the_revoke_still_returns() {
    let Some(p) = PgProxy::start() else { return };
    p.cluster
        .admin_sql(&format!("ALTER ROLE {} CONNECTION LIMIT 1", p.role));
    let (gid, secret) = bob_grant(&p);
    let trap = "DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(0.05); \
                EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$";
    let child = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        .args(["-c", trap])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the loop to run upstream", || {
        p.backends().iter().any(|b| b.contains("|active|DO $$"))
    });
    assert_eq!(p.d.revoke(&gid, "end of test"), 1);
    let o = common::wait_output(child, HANG);
    assert!(text(&o).1.contains("FATAL:  terminating connection"));
    wait_for("the session.ended audit event", || {
        let a = p.d.get("/v1/audit?limit=1000", Some(DAVE)).unwrap().body;
        a.contains(r#""backend_confirmed_gone":false"#)
    });
    assert!(p.d.logs().contains("could not confirm the backend is gone"));
    // The trapped backend is still there: only the operator can end it now.
    assert!(!p.backends().is_empty());
    p.cluster.admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'jitgate:%'",
    );
}

/// A user may hold two active grants on one target (a second request while
/// the first runs); the secrets of both must log in, though a PostgreSQL
/// client names only user and target and the server sends one salt first.
#[test]
fn secrets_of_two_active_grants_on_one_target_both_log_in() {
    let Some(p) = PgProxy::start() else { return };
    let (first, s1) = p.grant(BOB, "auto-db", "10m");
    let (second, s2) = p.grant(BOB, "auto-db", "10m");
    assert_ne!(first, second);
    for (which, secret) in [("first", &s1), ("second", &s2)] {
        let o = p.psql("bob@auto-db", secret, "SELECT 1");
        let (out, err) = text(&o);
        assert!(o.status.success(), "the {which} grant's secret: {err}");
        assert!(out.contains('1'), "{out}");
    }
    // A rotation of the first keeps the salt the second's secrets use.
    let r =
        p.d.post(
            &format!("/v1/grants/{first}/secret"),
            Some(BOB),
            r#"{"rotate": true}"#,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let s3 = r.json()["secret"].as_str().unwrap().to_string();
    for secret in [&s2, &s3] {
        let o = p.psql("bob@auto-db", secret, "SELECT 1");
        assert!(o.status.success(), "{}", text(&o).1);
    }
}
