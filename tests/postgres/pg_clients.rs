//! Real client workloads through the PostgreSQL front end: COPY in and out
//! of 100 MB, fast-path large objects, pgbench in every query mode, sqlx,
//! psycopg (cancel, async, LISTEN/NOTIFY), and a long session.

use crate::common;

use common::e2e_skip;
use common::pgproxy::*;
use common::wait::*;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn copy_in_and_out_of_100_mb() {
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let o = p.psql("bob@auto-db", &secret, "CREATE TABLE big (id int, v text)");
    assert!(o.status.success(), "{:?}", text(&o));

    // 100,000 rows of ~1 KiB: about 100 MB each way.
    let row = "x".repeat(1000);
    let file = p.d.dir.join("copy-in.tsv");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..100_000 {
            writeln!(f, "{i}\t{row}").unwrap();
        }
    }
    let o = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        .args(["-c", "COPY big FROM STDIN"])
        .stdin(std::fs::File::open(&file).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = common::wait_output(o, HANG);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = p.psql(
        "bob@auto-db",
        &secret,
        "SELECT count(*), sum(length(v)) FROM big",
    );
    assert_eq!(text(&o).0.trim(), "100000|100000000");

    let out = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        .args(["-c", "COPY big TO STDOUT"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let o = common::wait_output(out, HANG);
    assert!(o.status.success());
    assert_eq!(
        o.stdout.len(),
        std::fs::metadata(&file).unwrap().len() as usize
    );
    assert_eq!(o.stdout, std::fs::read(&file).unwrap());
}

#[test]
fn large_objects_over_the_fast_path_round_trip() {
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let src = p.d.dir.join("blob.bin");
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let dst = p.d.dir.join("blob.out");
    // psql's \lo_import and \lo_export use libpq's fast-path FunctionCall.
    let script = format!(
        "\\lo_import {src}\n\\set oid :LASTOID\n\\lo_export :oid {dst}\n\\lo_unlink :oid\n",
        src = src.display(),
        dst = dst.display()
    );
    let o = psql_script(&p, &secret, &[], &script);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(std::fs::read(&dst).unwrap(), data);
}

#[test]
fn pgbench_in_every_query_mode_has_no_failed_transactions() {
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let conn = p.conninfo("bob@auto-db", "");
    let bench = |args: &[&str]| {
        let o = Command::new(p.cluster.tool("pgbench"))
            .args(args)
            .arg(&conn)
            .env("PGPASSWORD", &secret)
            .output_within(HANG);
        let (out, err) = text(&o);
        assert!(o.status.success(), "pgbench {args:?}: {out}\n{err}");
        out
    };
    bench(&["-i", "-s", "1", "-q"]);
    for mode in ["simple", "extended", "prepared"] {
        let out = bench(&["-n", "-M", mode, "-c", "4", "-j", "2", "-t", "100"]);
        assert!(
            out.contains("number of transactions actually processed: 400/400"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("number of failed transactions: 0"),
            "{mode}: {out}"
        );
    }
}

#[test]
fn a_long_session_with_many_statements() {
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let mut script = String::from("CREATE TEMP TABLE t (n int);\n");
    for i in 0..3000 {
        script += &format!("INSERT INTO t VALUES ({i});\n");
    }
    script += "SELECT count(*), sum(n) FROM t;\n";
    let o = psql_script(&p, &secret, &["-q"], &script);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(text(&o).0.trim(), "3000|4498500");
}

#[test]
fn sqlx_prepared_statements_over_a_plaintext_listener() {
    use sqlx::{Connection, Row};
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, secret) = bob_grant(&p);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(p.port)
            .username("bob@auto-db")
            .password(&secret)
            .database(&p.db)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        let mut c = sqlx::postgres::PgConnection::connect_with(&opts)
            .await
            .unwrap();
        for i in 0..50i32 {
            let r = sqlx::query("SELECT $1::int + 1 AS n, current_user AS u")
                .bind(i)
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(r.get::<i32, _>("n"), i + 1);
            assert_eq!(r.get::<String, _>("u"), p.role);
        }
        c.close().await.unwrap();
    });
}

fn python_with_psycopg() -> Option<String> {
    let candidates = [
        std::env::var("JITGATE_PYTHON").ok(),
        Some(format!(
            "{}/target/pyenv/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )),
        Some("python3".to_string()),
    ];
    candidates.into_iter().flatten().find(|py| {
        Command::new(py)
            .args(["-c", "import psycopg"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn psycopg_cancel_async_notify_and_large_objects() {
    let Some(py) = python_with_psycopg() else {
        e2e_skip("python3 with psycopg (pip install 'psycopg[binary]', or run .ci/run)");
        return;
    };
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let o = Command::new(py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/psycopg_check.py"
        ))
        .arg(p.conninfo("bob@auto-db", ""))
        .env("PGPASSWORD", &secret)
        .output_within(HANG);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("ALL OK"), "{out}");
}

/// Runs `script` through the proxy on psql's standard input, as bob.
fn psql_script(p: &PgProxy, secret: &str, args: &[&str], script: &str) -> std::process::Output {
    let mut c = p
        .psql_command(&p.conninfo("bob@auto-db", ""), secret)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    common::wait_output(c, HANG)
}

/// What a client sees of its backend matches a direct connection: the
/// BackendKeyData pid is `pg_backend_pid()` and the pid of its own NOTIFY,
/// a cancel with that pid and the minted key still lands, the
/// ParameterStatus for application_name is the client's own value (at
/// startup, after SET and after RESET), while the upstream keeps the tag;
/// `pg_terminate_backend(pg_backend_pid())` reaches the client as 57P01.
#[test]
fn a_raw_client_sees_its_backends_pid_and_its_own_application_name() {
    use common::pgraw::RawSession;
    let Some(p) = PgProxy::start_with(true) else {
        return;
    };
    let (_g, secret) = bob_grant(&p);
    let mut r = RawSession::login(
        &p,
        "bob@auto-db",
        &secret,
        &[("application_name", "mine-app")],
    );
    assert_eq!(r.status("application_name"), Some("mine-app"));
    assert_eq!(
        r.query("SELECT pg_backend_pid()").unwrap(),
        vec![r.pid.to_string()]
    );
    // Upstream, the backend still carries the session's tag.
    let upstream = p.cluster.admin_sql(&format!(
        "SELECT application_name FROM pg_stat_activity WHERE pid = {}",
        r.pid
    ));
    assert!(
        upstream.trim().starts_with("jitgate:bob:ses_"),
        "{upstream}"
    );
    let shown = r.query("SHOW application_name").unwrap();
    assert!(shown[0].starts_with("jitgate:bob:ses_"), "{shown:?}");

    r.query("SET application_name = 'other'").unwrap();
    assert_eq!(r.status("application_name"), Some("other"));
    r.query("RESET application_name").unwrap();
    assert_eq!(r.status("application_name"), Some("mine-app"));
    assert!(
        r.statuses.iter().all(|(_, v)| !v.starts_with("jitgate:")),
        "{:?}",
        r.statuses
    );

    r.query("LISTEN ch").unwrap();
    r.query("NOTIFY ch, 'hi'").unwrap();
    assert_eq!(
        r.notifications,
        vec![(r.pid, "ch".to_string(), "hi".to_string())]
    );

    // A cancel with (real pid, minted key) through the proxy.
    let (pid, key) = (r.pid, r.key);
    let (port, cluster) = (p.port, p.cluster);
    let canceller = std::thread::spawn(move || {
        common::pg_activity::wait_active(cluster, pid, "SELECT pg_sleep(30)");
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut m = 16i32.to_be_bytes().to_vec();
        m.extend(80_877_102i32.to_be_bytes());
        m.extend(pid.to_be_bytes());
        m.extend(key);
        c.write_all(&m).unwrap();
    });
    let e = r.query("SELECT pg_sleep(30)").unwrap_err();
    canceller.join().unwrap();
    assert!(e.contains(&('C', "57014".to_string())), "{e:?}");

    let e = r
        .query("SELECT pg_terminate_backend(pg_backend_pid())")
        .unwrap_err();
    assert!(e.contains(&('C', "57P01".to_string())), "{e:?}");
    assert!(e.contains(&('S', "FATAL".to_string())), "{e:?}");
}

/// The same through real clients: tokio-postgres reports the client's own
/// application_name and a NOTIFY pid equal to `pg_backend_pid()`; psql gets
/// 57P01 when its backend terminates itself.
#[test]
fn real_clients_see_their_own_application_name_and_backend_pid() {
    use futures_util::StreamExt;
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("localhost")
            .port(p.port)
            .user("bob@auto-db")
            .password(&secret)
            .dbname(&p.db)
            .application_name("tp-app")
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        let (c, mut conn) = cfg.connect(p.tls()).await.unwrap();
        assert_eq!(conn.parameter("application_name"), Some("tp-app"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        tokio::spawn(async move {
            while let Some(Ok(m)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = m {
                    let _ = tx.send(n.process_id());
                }
            }
        });
        let pid: i32 = c
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        c.batch_execute("LISTEN ch; NOTIFY ch, 'x'").await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("a notification within 20 s");
        assert_eq!(got, Some(pid));
    });
    let o = p.psql(
        "bob@auto-db",
        &secret,
        "SELECT pg_terminate_backend(pg_backend_pid())",
    );
    let (_, err) = text(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("terminating connection due to administrator command"),
        "{err}"
    );
}

/// A second driver's whole view of a connection (pipeline mode, server-side
/// prepared statements, binary COPY both ways, binary results of many
/// types, a large result through a server-side cursor, LISTEN/NOTIFY to
/// self, errors mid-pipeline, savepoints, the backend pid and
/// application_name) is the same through jitgate as direct to the server.
#[test]
fn psycopg_sees_the_same_through_the_proxy_as_direct() {
    let Some(py) = python_with_psycopg() else {
        e2e_skip("python3 with psycopg (pip install 'psycopg[binary]', or run .ci/run)");
        return;
    };
    let Some(p) = PgProxy::start() else { return };
    let (_g, secret) = bob_grant(&p);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/psycopg_compat.py"
    );
    let run = |conninfo: String, password: &str| {
        let child = Command::new(&py)
            .arg(script)
            .arg(conninfo)
            .env("PGPASSWORD", password)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let o = common::wait_output(child, std::time::Duration::from_secs(300));
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}\n{err}");
        serde_json::from_str::<serde_json::Value>(out.trim())
            .unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let direct = run(
        format!(
            "host=127.0.0.1 port={} user={} dbname={} sslmode=disable",
            p.cluster.port, p.role, p.db
        ),
        ROLE_PASSWORD,
    );
    let proxied = run(p.conninfo("bob@auto-db", ""), &secret);
    for (check, want) in direct.as_object().unwrap() {
        assert!(want.get("error").is_none(), "{check} failed direct: {want}");
        assert_eq!(&proxied[check], want, "{check} differs through the proxy");
    }
    assert_eq!(direct.as_object().unwrap().len(), 10, "{direct}");
    // The checks check something: spot values of the direct run.
    assert_eq!(direct["backend_pid_matches"], true, "{direct}");
    assert_eq!(direct["pipeline"]["error_sqlstate"], "23505", "{direct}");
    assert_eq!(direct["listen_notify"][0][2], true, "{direct}");
    assert_eq!(direct["copy_binary"]["rows"], 20001, "{direct}");
    assert_eq!(direct["large_result"]["rows"], 300000, "{direct}");
    assert_eq!(
        direct["application_name"]["parameter_status"], "compat-app",
        "{direct}"
    );
}
