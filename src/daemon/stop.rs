//! Signals and the ordered stop: SIGHUP reloads, SIGTERM and SIGINT stop.
//! The stop runs under one deadline (shutdown_timeout) so a service
//! manager's stop timeout can be set just above it.

use super::services::{checkpoint, Services};
use crate::sessions::{EndCause, EndReason};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

/// Serves reloads until the daemon is told to stop.
pub(super) async fn wait_for_signal(svc: &Services) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                let _ = svc.reloader.reload("SIGHUP").await;
            }
        }
    }
}

/// Listeners first (nothing new is admitted), then every session ends with
/// `shutdown`, then the accept loops, the session audit queue, the last
/// checkpoint, the cluster row and the notifier drain, the store last.
pub(super) async fn shut_down(svc: Services, mut tasks: JoinSet<()>) {
    tracing::info!("shutting down: closing listeners and every session");
    crate::sd_notify::notify("STOPPING=1\nSTATUS=closing sessions");
    svc.shutdown.cancel();
    let deadline = tokio::time::Instant::now() + svc.shared.get().shutdown_timeout;
    let ended = tokio::time::timeout_at(
        deadline,
        svc.sessions
            .end_where(|_| true, EndCause::new(EndReason::Shutdown)),
    )
    .await;
    match ended {
        Ok(n) => tracing::info!(sessions = n, "sessions closed"),
        Err(_) => tracing::warn!("sessions did not all close within shutdown_timeout"),
    }
    let _ = tokio::time::timeout_at(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let unwritten = svc
        .recorder
        .drain(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await;
    if unwritten > 0 {
        tracing::warn!(
            events = unwritten,
            "session audit events not written before shutdown"
        );
    }
    let _ = svc.periodic.await;
    checkpoint(&svc.store, "shutdown").await;
    if let Some(c) = &svc.cluster {
        c.leave().await;
    }
    svc.notifier.stop().await;
    svc.store.close().await;
    tracing::info!("jitgate stopped");
}
