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
    /// The grant's end: an extension moves it, and `expiry` with it.
    end: tokio::sync::watch::Receiver<i64>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
}

impl EndTimers {
    pub fn new(info: &SessionInfo, idle_timeout: Option<Duration>) -> EndTimers {
        let mut end = info.watch_end();
        let at = *end.borrow_and_update();
        EndTimers {
            expiry: Box::pin(tokio::time::sleep_until(info.clock.deadline(at))),
            end,
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
            let end = &mut self.end;
            let moved = async {
                match end.changed().await {
                    Ok(()) => Some(*end.borrow_and_update()),
                    // The table outlives its sessions; never in practice.
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = self.expiry.as_mut() => return EndReason::Expired,
                at = moved => {
                    if let Some(at) = at {
                        self.expiry.as_mut().reset(info.clock.deadline(at));
                    }
                    continue;
                }
                _ = idle_sleep => {}
            }
            // The idle timer fired: end only if nothing moved since.
            let Some((limit, sleep)) = self.idle.as_mut() else {
                continue;
            };
            let quiet = info.clock.now_ms() - info.last_activity_ms.load(Ordering::Relaxed);
            let quiet = Duration::from_millis(quiet.max(0) as u64);
            if quiet >= *limit {
                return EndReason::Idle;
            }
            sleep.as_mut().reset(Instant::now() + (*limit - quiet));
        }
    }
}

impl super::SessionGuard {
    /// Completes when the session must end from our side, with the cause
    /// that wins: the token (revoke, terminate, lock, reload, shutdown; the
    /// recorded cause), else its own timers (expiry, idle), recorded here
    /// unless a cause is already known. Build it once per session and poll
    /// it by `&mut` in the relay's `select!`: the timers live inside, so a
    /// poll that loses a race loses nothing. The client's or the target's
    /// own close is the relay's to record, not this.
    pub fn ending(
        &self,
        idle_timeout: Option<Duration>,
    ) -> impl std::future::Future<Output = super::EndCause> + Send + 'static {
        let info = self.info().clone();
        let token = self.token().clone();
        let mut timers = EndTimers::new(&info, idle_timeout);
        async move {
            use super::EndCause;
            let reason = tokio::select! {
                biased;
                _ = token.cancelled() => EndReason::Error,
                reason = timers.fired(&info) => {
                    info.record_cause(EndCause::new(reason));
                    reason
                }
            };
            info.cause().unwrap_or_else(|| EndCause::new(reason))
        }
    }
}
