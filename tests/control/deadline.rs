//! A session ends at its grant's end instant exactly: open at the deadline
//! minus 1 ms, closed at the deadline. Run on tokio's paused clock with the
//! session table's injected clock, so it is deterministic and instant; a
//! periodic sweep, or any delay in the relay's own expiry timer, fails it.

use jitgate::clock::TokioClock;
use jitgate::config::TargetKind;
use jitgate::sessions::{Admission, EndReason, SessionTable};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

const GRANT_MS: i64 = 60_000;

#[tokio::test(start_paused = true)]
async fn a_session_is_open_at_deadline_minus_1ms_and_closed_at_the_deadline() {
    let start_ms = 1_800_000_000_000;
    let clock = TokioClock::starting_at(start_ms);
    let table = SessionTable::with_clock("test", clock.clone());
    let guard = table
        .admit(Admission {
            grant_id: "g1".into(),
            user: "bob".into(),
            target: "web".into(),
            kind: TargetKind::Tcp,
            client_addr: "127.0.0.1:1".into(),
            granted_at_ms: start_ms,
            expires_at_ms: start_ms + GRANT_MS,
            max_sessions: None,
            warnings: None,
        })
        .expect("admitted");
    guard.start(None);
    let (client, mut client_peer) = tokio::io::duplex(1024);
    let (upstream, mut upstream_peer) = tokio::io::duplex(1024);
    let began = Instant::now();
    let relay = tokio::spawn(async move {
        let cause = jitgate::relay::run(client, upstream, &guard, None).await;
        drop(guard);
        cause
    });
    // Traffic mid-grant changes nothing (no idle timeout here).
    tokio::time::sleep(Duration::from_millis(GRANT_MS as u64 / 2)).await;
    client_peer
        .write_all(b"ping")
        .await
        .expect("relay takes bytes");
    upstream_peer
        .write_all(b"pong")
        .await
        .expect("relay takes bytes");

    tokio::time::sleep_until(began + Duration::from_millis(GRANT_MS as u64 - 1)).await;
    settle().await;
    assert!(
        !relay.is_finished(),
        "the session ended before its deadline"
    );
    assert_eq!(table.len(), 1, "the session left the table early");

    tokio::time::sleep_until(began + Duration::from_millis(GRANT_MS as u64)).await;
    settle().await;
    assert!(relay.is_finished(), "the session outlived its deadline");
    let cause = relay.await.expect("relay task");
    assert_eq!(cause.reason, EndReason::Expired);
    assert!(table.is_empty(), "the closed session is still in the table");
}

/// Lets every task that is ready at this instant run (time stays put: a
/// paused clock advances only when all tasks are idle, and yielding is not
/// idling).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
