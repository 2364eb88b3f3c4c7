//! Batched audit appends and the SQLite write gate, on SQLite and a real
//! PostgreSQL: a batch keeps the chain gap-free and in order, and a revoke's
//! store write is not starved by a writer appending batch after batch.

use crate::common;

use jitgate::audit::AuditEntry;
use jitgate::clock::now_ms;
use jitgate::store::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn event(action: &'static str, subject: String) -> AuditEntry {
    AuditEntry::new("test", action, &subject, json!({"n": subject}))
}

fn new_request(id: &str) -> NewRequest {
    let now = now_ms();
    NewRequest {
        id: id.into(),
        requester: "alice".into(),
        target: "cache".into(),
        policy: "p".into(),
        reason: "INC-1".into(),
        duration_ms: 3_600_000,
        approvals_required: 0,
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
        extends_grant: None,
        starts_at_ms: None,
        break_glass: false,
    }
}

/// Batches from several tasks, interleaved with single appends: every batch
/// lands contiguous and in its given order, and the whole chain verifies.
async fn batches_keep_the_chain_in_order(s: Store) {
    let s = Arc::new(s);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for b in 0..5 {
                let batch: Vec<AuditEntry> = (0..AUDIT_BATCH)
                    .map(|i| event("session.started", format!("t{t}-b{b}-{i}")))
                    .collect();
                let recs = s
                    .audit_batch(&format!("t{t}-b{b}"), &batch)
                    .await
                    .expect("batch");
                out.push((batch, recs));
                s.audit(&event("test.single", format!("t{t}-s{b}")))
                    .await
                    .expect("single");
            }
            out
        }));
    }
    for t in tasks {
        for (batch, recs) in t.await.expect("task") {
            assert_eq!(recs.len(), batch.len());
            for (i, (e, r)) in batch.iter().zip(&recs).enumerate() {
                assert_eq!(r.subject, e.subject, "the batch's order is kept");
                assert_eq!(r.seq, recs[0].seq + i as i64, "a batch is contiguous");
            }
        }
    }
    let n = (4 * 5 * (AUDIT_BATCH + 1)) as i64;
    let v = s.audit_verify().await.expect("verify");
    assert!(v.ok && v.events == n, "{v:?}");
    let page = s.audit_page(0, n).await.expect("page");
    let seqs: Vec<i64> = page.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    // An empty batch writes nothing and breaks nothing.
    assert!(s.audit_batch("empty", &[]).await.expect("empty").is_empty());
    assert_eq!(s.audit_head().await.expect("head").0, n);
    // A batch tried again under its id (its COMMIT landed, its answer was
    // lost) is not written twice.
    let again = vec![event("session.started", "t0-b0-0".to_string())];
    assert!(s
        .audit_batch("t0-b0", &again)
        .await
        .expect("retry")
        .is_empty());
    assert_eq!(s.audit_head().await.expect("head").0, n);
    assert_eq!(
        s.audit_batch("t0-b5", &again).await.expect("new id").len(),
        1
    );
    let v = s.audit_verify().await.expect("verify");
    assert!(v.ok && v.events == n + 1, "{v:?}");
}

/// Batches flooding in back to back, as the session writer does with a
/// backlog, must not hold off a revoke: its store write queues behind at
/// most the batch in progress (and one that began just before it asked).
/// Without the write gate, SQLite's busy handler keeps a revoke sleeping
/// while the flood's next batches take the write lock: it waits for dozens
/// of them, or fails "database is locked". Ten revokes in a row during one
/// flood, each allowed three batches, make a lucky pass without the gate
/// unlikely. PostgreSQL queues the head row's lock waiters itself.
async fn revokes_are_not_starved_by_audit_batches(s: Store) {
    const BATCHES: usize = 60;
    const PER_BATCH: usize = 512;
    const REVOKES: usize = 10;
    let total = (BATCHES * PER_BATCH) as i64;
    for i in 0..REVOKES {
        let (_, g) = s
            .create_request(
                &new_request(&format!("r-{i}")),
                Some(&format!("g-{i}")),
                &[],
            )
            .await
            .expect("grant");
        assert_eq!(g.expect("granted").state, GrantState::Active);
    }
    let base = s.audit_head().await.expect("head").0;
    // Built beforehand, so the flood takes the write lock again right
    // after each commit, as a writer with a backlog does.
    let batches: Vec<Vec<AuditEntry>> = (0..BATCHES)
        .map(|b| {
            (0..PER_BATCH)
                .map(|i| event("session.started", format!("f{b}-{i}")))
                .collect()
        })
        .collect();
    let flood = {
        let s = s.clone();
        tokio::spawn(async move {
            for (b, batch) in batches.iter().enumerate() {
                s.audit_batch(&format!("flood-{b}"), batch)
                    .await
                    .expect("flood batch");
            }
        })
    };
    // Let the flood get going: two batches in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.audit_head().await.expect("head").0 < base + 2 * PER_BATCH as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut waited = Vec::new();
    for i in 0..REVOKES {
        let before = s.audit_head().await.expect("head").0;
        let gid = format!("g-{i}");
        let ended = tokio::time::timeout(
            Duration::from_secs(60),
            s.end_grant(
                &gid,
                GrantEnd::Revoked,
                "carol",
                "INC-9",
                now_ms(),
                &event("grant.revoked", gid.clone()),
            ),
        )
        .await
        .expect("the revoke hung")
        .expect("the revoke's store write");
        assert_eq!(ended.state, GrantState::Revoked);
        // Flood events committed while this revoke waited (less its own).
        let during = s.audit_head().await.expect("head").0 - before - 1;
        waited.push(during / PER_BATCH as i64);
        assert!(
            during <= 3 * PER_BATCH as i64,
            "revoke {i} waited for {during} flood events (batches waited per revoke: {waited:?})"
        );
    }
    let flooded = s.audit_head().await.expect("head").0 - base - REVOKES as i64;
    eprintln!("batches waited per revoke: {waited:?}; {flooded} of {total} flood events written");
    assert!(
        flooded < total,
        "the revokes returned only after the whole flood"
    );
    tokio::time::timeout(Duration::from_secs(300), flood)
        .await
        .expect("the flood hung")
        .expect("flood task");
    let v = s.audit_verify().await.expect("verify");
    assert!(v.ok && v.events == base + total + REVOKES as i64, "{v:?}");
}

macro_rules! scenarios {
    ($make:expr, $($name:ident),* $(,)?) => {{
        $(
            eprintln!("scenario {}", stringify!($name));
            $name($make(stringify!($name)).await).await;
        )*
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_batches_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let make = |name: &str| {
        let url = format!("sqlite://{}/{name}.db", dir.path().display());
        async move { Store::connect(&url, 8).await.expect("sqlite store") }
    };
    scenarios!(
        make,
        batches_keep_the_chain_in_order,
        revokes_are_not_starved_by_audit_batches
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_batches_on_postgres() {
    let Some(pg) = common::pg::PgCluster::shared() else {
        return;
    };
    let make = |name: &str| {
        let url = pg.create_db(name);
        async move { Store::connect(&url, 8).await.expect("postgres store") }
    };
    scenarios!(
        make,
        batches_keep_the_chain_in_order,
        revokes_are_not_starved_by_audit_batches
    );
}

/// This process's CPU time (user + system, all threads, SQLite's included).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<u64> = after_comm
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the comm).
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// CPU per audit row, one transaction per row (`Store::audit`) against
/// batches of [`AUDIT_BATCH`] (`Store::audit_batch`), on a SQLite file and
/// (when available) PostgreSQL:
///
///     cargo test --test control audit_write_cost -- --ignored --nocapture
///
/// A debug build: the figures compare the two paths, they are not the
/// release daemon's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn audit_write_cost() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let entries: Vec<AuditEntry> = (0..N)
        .map(|i| {
            AuditEntry::new(
                "alice",
                "session.started",
                &format!("ses_{i}"),
                json!({"grant": "gr_x", "target": "cache", "kind": "tcp", "client": "127.0.0.1:5555"}),
            )
        })
        .collect();
    let pg = common::pg::PgCluster::shared();
    for round in 0..4 {
        // Rounds 0 and 1 on SQLite, 2 and 3 on PostgreSQL (this process's
        // CPU only: the server's is not counted).
        let url = |name: &str| match (&pg, round) {
            (_, 0 | 1) => Some(format!(
                "sqlite://{}/{name}{round}.db",
                dir.path().display()
            )),
            (Some(pg), _) => Some(pg.create_db(&format!("cost_{name}{round}"))),
            (None, _) => None,
        };
        let (Some(single_url), Some(batch_url)) = (url("single"), url("batch")) else {
            continue;
        };
        let s = Store::connect(&single_url, 8).await.expect("store");
        let backend = format!("{:?}", s.backend());
        let (c0, t0) = (cpu_time(), std::time::Instant::now());
        for e in &entries {
            s.audit(e).await.expect("audit");
        }
        let (single_cpu, single_wall) = (cpu_time() - c0, t0.elapsed());
        let s = Store::connect(&batch_url, 8).await.expect("store");
        let (c0, t0) = (cpu_time(), std::time::Instant::now());
        for (i, chunk) in entries.chunks(AUDIT_BATCH).enumerate() {
            s.audit_batch(&format!("cost-{i}"), chunk)
                .await
                .expect("audit_batch");
        }
        let (batch_cpu, batch_wall) = (cpu_time() - c0, t0.elapsed());
        assert_eq!(s.audit_head().await.expect("head").0, N as i64);
        println!(
            "{backend} round {round}: {N} rows, one per transaction: CPU {:.0} ms ({:.0} µs/row), wall {:.0} ms; {AUDIT_BATCH} per transaction: CPU {:.0} ms ({:.0} µs/row), wall {:.0} ms",
            single_cpu.as_secs_f64() * 1e3,
            single_cpu.as_secs_f64() * 1e6 / N as f64,
            single_wall.as_secs_f64() * 1e3,
            batch_cpu.as_secs_f64() * 1e3,
            batch_cpu.as_secs_f64() * 1e6 / N as f64,
            batch_wall.as_secs_f64() * 1e3,
        );
    }
}
