//! A session's own end timers: its grant's end instant and the policy's idle
//! timeout. Every relay selects on [`EndTimers::fired`] next to its grant
//! token, so expiry does not depend on any other task and an idle session
//! ends at the exact instant its quiet period runs out.

use super::{EndReason, SessionInfo};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub struct EndTimers {
    expiry: Pin<Box<Sleep>>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl EndTimers {
    pub fn new(info: &SessionInfo, idle_timeout: Option<Duration>) -> EndTimers {
        EndTimers {
            expiry: Box::pin(tokio::time::sleep_until(crate::clock::deadline(
                info.expires_at_ms,
            ))),
            idle: idle_timeout.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
        }
    }

    /// Completes with `Expired` or `Idle`. Cancel-safe: the timers live in
    /// `self`, so calling it again in the next `select!` loses nothing.
    pub async fn fired(&mut self, info: &SessionInfo) -> EndReason {
        loop {
            let idle_sleep = async {
                match self.idle.as_mut() {
                    Some((_, s)) => s.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.expiry.as_mut() => return EndReason::Expired,
                _ = idle_sleep => {}
            }
            // The idle timer fired: end only if nothing moved since.
            let Some((limit, sleep)) = self.idle.as_mut() else {
                continue;
            };
            let quiet = crate::clock::now_ms() - info.last_activity_ms.load(Ordering::Relaxed);
            let quiet = Duration::from_millis(quiet.max(0) as u64);
            if quiet >= *limit {
                return EndReason::Idle;
            }
            sleep.as_mut().reset(Instant::now() + (*limit - quiet));
        }
    }
}
