//! Real client workloads through the PostgreSQL front end: COPY in and out
//! of 100 MB, fast-path large objects, pgbench in every query mode, sqlx,
//! psycopg (cancel, async, LISTEN/NOTIFY), and a long session.

mod common;

use common::e2e_skip;
use common::pgproxy::*;
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
        .output()
        .unwrap();
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
    let o = out.wait_with_output().unwrap();
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
            .output()
            .expect("run pgbench");
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
            .database("app")
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
            assert_eq!(r.get::<String, _>("u"), "jit_admin");
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
        .output()
        .unwrap();
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
    c.wait_with_output().unwrap()
}
