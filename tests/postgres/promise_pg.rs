//! No PostgreSQL session outlives its grant, whatever ends it: revoke,
//! terminate, lock, or a reload that removes the target. For each, a psql
//! running a long query gets the FATAL with the reason, the query is
//! cancelled upstream and the backend leaves, and the audit records why.

use crate::common;

use common::causes::{ended_reasons, Cause, ALL};
use common::pgproxy::*;
use common::tunnel::wait_for;
use common::wait::HANG;
use std::process::Stdio;

fn psql_long_query_is_ended_by(cause: Cause) {
    let Some(p) = PgProxy::start() else { return };
    let (gid, secret) = bob_grant(&p);
    let child = p
        .psql_command(&p.conninfo("bob@auto-db", ""), &secret)
        .args(["-c", "SELECT pg_sleep(600)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the query to run upstream", || {
        p.backends()
            .iter()
            .any(|b| b.contains("|active|SELECT pg_sleep(600)"))
    });
    if let Some(n) = cause.apply(&p.d, "bob", &gid, "auto-db") {
        assert_eq!(n, 1, "{cause:?}");
    }
    let o = common::wait_output(child, HANG);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{cause:?}: {err}");
    assert!(
        err.contains(&format!(
            "FATAL:  terminating connection: access to auto-db ended: {}",
            cause.farewell()
        )),
        "{cause:?}: {err}"
    );
    wait_for("the backend to exit", || p.backends().is_empty());
    assert!(
        p.d.logs().contains("cancelled the running query upstream"),
        "{cause:?}: the query was not cancelled upstream"
    );
    wait_for("the session's end to be audited", || {
        !ended_reasons(&p.d).is_empty()
    });
    assert_eq!(ended_reasons(&p.d), [cause.reason()], "{cause:?}");
}

#[test]
fn every_way_of_ending_access_ends_a_psql_query_and_its_backend() {
    for cause in ALL {
        psql_long_query_is_ended_by(cause);
    }
}

/// The same with tokio-postgres: the session ends with a FATAL 57P01 error,
/// as a driver sees it, for each cause.
#[test]
fn every_way_of_ending_access_ends_a_tokio_postgres_session() {
    for cause in ALL {
        let Some(p) = PgProxy::start() else { return };
        let (gid, secret) = bob_grant(&p);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (client, conn) = p.tokio_postgres("bob@auto-db", &secret).await.unwrap();
            let driver = tokio::spawn(conn);
            let query = tokio::spawn(async move {
                let r = client.simple_query("SELECT pg_sleep(600)").await;
                (r, client)
            });
            let backends = || p.backends();
            let running = async {
                while !backends()
                    .iter()
                    .any(|b| b.contains("|active|SELECT pg_sleep(600)"))
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            };
            tokio::time::timeout(HANG, running)
                .await
                .unwrap_or_else(|_| panic!("{cause:?}: the query never ran upstream"));
            let d = &p.d;
            let gid = gid.clone();
            tokio::task::block_in_place(|| {
                if let Some(n) = cause.apply(d, "bob", &gid, "auto-db") {
                    assert_eq!(n, 1, "{cause:?}");
                }
            });
            let (r, _client) = tokio::time::timeout(HANG, query)
                .await
                .expect("the query still runs")
                .unwrap();
            let e = r.expect_err("the query finished despite the end of access");
            let db = e.as_db_error().unwrap_or_else(|| panic!("{cause:?}: {e}"));
            assert_eq!(db.code().code(), "57P01", "{cause:?}: {db}");
            assert!(
                db.message().contains(cause.farewell()),
                "{cause:?}: {}",
                db.message()
            );
            let ended = tokio::time::timeout(HANG, driver)
                .await
                .expect("the connection still open")
                .unwrap();
            assert!(ended.is_err(), "{cause:?}: the connection ended cleanly");
        });
        wait_for("the backend to exit", || p.backends().is_empty());
    }
}
