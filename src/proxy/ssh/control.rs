//! The SSH front end's one door to the control plane: admission, the
//! session guard, metrics and audit. No other file of `proxy::ssh` calls
//! into `crate::grants`, `crate::sessions`, `crate::metrics` or
//! `crate::store`; they name the few types re-exported here.
//!
//! Invariants:
//! - A [`Session`] owns its guard: dropping it ends the session table's
//!   entry (with the first cause recorded, see `SessionGuard`).
//! - [`Session::next`] reports the grant's end, whether the grant was ended
//!   elsewhere (its token) or by one of its own timers (expiry, idle),
//!   through the guard's one `ending` watch; once the end is seen, every
//!   later call reports it again at once. It is cancel-safe: the watch
//!   lives in the `Session`.
//! - Audit writes run off the connection's path (spawned); a store that is
//!   down costs a warning in the log, never a stalled connection.

use crate::config::{Config, Target, TargetKind};
use crate::grants::Grants;
use crate::proxy::limiter::AuthLimiter;
use crate::recording::RecordingKind;
use crate::sessions::SessionGuard;
use russh::server;
use serde_json::json;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::grants::Blame;
pub use crate::sessions::{EndCause as Cause, EndReason as Reason, SessionInfo};

/// What one SSH listener needs to admit and relay; built by the daemon.
pub struct SshFrontEnd {
    pub grants: Arc<Grants>,
    /// The user CA whose certificates identify engineers.
    pub ca: Arc<crate::ssh_ca::UserCa>,
    pub config: Arc<server::Config>,
    pub limiter: AuthLimiter,
}

/// Capacity of a session's warning queue (grant ending soon): a handful
/// per grant, and a full queue only drops a warning.
const WARNINGS: usize = 8;

/// An admission refused: the words for the engineer, the metric label and
/// whose fault it is.
#[derive(Debug)]
pub struct Refused {
    pub why: String,
    pub reason: &'static str,
    /// Whose fault: the target's failure is a connect failure rather than
    /// a prohibition (a channel's failure code), and only the engineer's
    /// own refusals count against their limit. A store outage shares the
    /// target's metric label but not its blame.
    pub blame: Blame,
}

impl From<crate::grants::Refusal> for Refused {
    fn from(r: crate::grants::Refusal) -> Self {
        Refused {
            why: r.to_string(),
            reason: r.metric_reason(),
            blame: r.blame(),
        }
    }
}

impl Refused {
    /// The target could not be reached: the target's fault, not the
    /// engineer's (nor ours).
    pub fn unreachable(why: String) -> Refused {
        crate::grants::Refusal::Unreachable(why).into()
    }
}

/// An admitted session, started or not: see `start`.
pub struct Session {
    guard: SessionGuard,
    ending: Pin<Box<dyn Future<Output = Cause> + Send>>,
    /// The end, once `ending` completed (a completed future is not polled
    /// again).
    ended: Option<Cause>,
    warnings: Option<mpsc::Receiver<String>>,
    /// The session's recording, when `[recording]` records SSH.
    recording: Option<super::record::SessionRec>,
}

/// What an admitted session reports to its connection.
pub enum Notice {
    /// A warning to show on every channel (the grant ends soon).
    Warning(String),
    /// The session is over: its grant ended, or a timer of its own fired.
    Ended(Cause),
}

impl SshFrontEnd {
    /// The configuration in force now.
    pub fn config_now(&self) -> Arc<Config> {
        self.grants.config_now()
    }

    /// Counts a refused connection or channel under `reason`.
    pub fn rejected(&self, reason: &str) {
        self.rejected_counter(reason).inc();
    }

    /// The counter of refused connections under `reason`, for the accept
    /// loop (which counts handshakes cut off before any handler runs).
    pub fn rejected_counter(&self, reason: &str) -> prometheus::IntCounter {
        self.grants.rejected_counter("ssh", reason)
    }

    /// Whether `user`, named by a valid certificate, may log in: not
    /// locked. A store that cannot say refuses (fail closed), blamed on us:
    /// the engineer's certificate was good.
    pub async fn certificate_user_allowed(&self, user: &str) -> Result<(), Refused> {
        match self.grants.is_locked(user).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(crate::grants::Refusal::Locked(user.to_string()).into()),
            Err(e) => {
                tracing::warn!(%user, error = %e, "lock check failed; refusing the certificate login");
                Err(Refused {
                    why: "the lock check failed".into(),
                    ..crate::grants::Refusal::Unavailable.into()
                })
            }
        }
    }

    /// Whether the IdP sign-in `id` a certificate carries is still live (not
    /// ended by logout, not expired). A store that cannot say refuses (fail
    /// closed).
    pub async fn certificate_signin_live(&self, id: &str) -> Result<(), Refused> {
        match self.grants.signin_live(id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refused {
                why: format!("the sign-in {id} that obtained the certificate has ended"),
                reason: "auth_failed",
                blame: Blame::Downstream,
            }),
            Err(e) => {
                tracing::warn!(signin = %id, error = %e, "sign-in check failed; refusing the certificate login");
                Err(Refused {
                    why: "the sign-in check failed".into(),
                    ..crate::grants::Refusal::Unavailable.into()
                })
            }
        }
    }

    /// Whether `user`'s configured static token is still the one (by its
    /// [`crate::ssh_ca::token_binding`]) that obtained a certificate.
    pub fn certificate_token_current(&self, user: &str, bound: &str) -> Result<(), Refused> {
        let cfg = self.config_now();
        let current = cfg
            .users
            .get(user)
            .and_then(|u| u.token_sha256.as_ref())
            .map(crate::ssh_ca::token_binding);
        if current.as_deref() == Some(bound) {
            return Ok(());
        }
        Err(Refused {
            why: format!(
                "the static token that obtained the certificate is no longer {user}'s (removed or replaced in the config)"
            ),
            reason: "auth_failed",
            blame: Blame::Downstream,
        })
    }

    /// An `auth.failed` audit event, written off the connection's path.
    pub fn audit_failure(&self, peer: SocketAddr, user: &str, target: &str, why: &str) {
        let entry = crate::audit::AuditEntry::new(
            user,
            "auth.failed",
            target,
            json!({"kind": "ssh", "client": peer.to_string(), "reason": why}),
        );
        self.grants.audit_detached(entry);
    }

    /// Audits a direct-tcpip open on a terminating connection:
    /// `ssh.forward` when relayed, `ssh.forward_refused` when the target's
    /// list does not name the destination (`dest`, already bounded).
    pub fn audit_forward(&self, info: Option<&SessionInfo>, target: &str, dest: &str, ok: bool) {
        let user = info.map(|i| i.user.as_str()).unwrap_or("unknown");
        let session = info.map(|i| i.id.as_str()).unwrap_or("");
        let action = if ok {
            tracing::info!(%user, %target, destination = %dest, "ssh forwarding opened");
            "ssh.forward"
        } else {
            tracing::info!(%user, %target, destination = %dest, "ssh forwarding refused: not in the target's forwarding list");
            "ssh.forward_refused"
        };
        let entry = crate::audit::AuditEntry::new(
            user,
            action,
            target,
            json!({"session": session, "destination": dest}),
        );
        self.grants.audit_detached(entry);
    }

    /// Admits identified `user` to `target` and opens their session (not
    /// yet started: the caller connects to the target, then `start`s it or
    /// ends it with `Reason::Error`). `warnings`: whether the session
    /// takes warnings before its end (a terminating connection, which has
    /// a stderr to show them on).
    pub async fn admit(
        &self,
        target: &str,
        user: &str,
        peer: SocketAddr,
        warnings: bool,
    ) -> Result<(Session, Target), Refused> {
        let admitted = self
            .grants
            .admit_identified(target, TargetKind::Ssh, user)
            .await
            .map_err(Refused::from)?;
        let (tx, rx) = if warnings {
            let (tx, rx) = mpsc::channel(WARNINGS);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let guard = self
            .grants
            .open_session(&admitted, TargetKind::Ssh, peer.to_string(), tx)
            .await
            .map_err(Refused::from)?;
        let recording = self
            .grants
            .recordings()
            .open_or_refuse(guard.info(), RecordingKind::Ssh, &admitted.grant.policy)
            .map_err(|why| Refused::from(crate::grants::Refusal::Unrecorded(why)))?
            .map(|o| super::record::SessionRec {
                recording: o.recording,
                full: o.full,
            });
        let idle: Option<Duration> = admitted.policy.as_ref().and_then(|p| p.idle_timeout);
        let ending = Box::pin(guard.ending(idle));
        let session = Session {
            guard,
            ending,
            ended: None,
            warnings: rx,
            recording,
        };
        Ok((session, admitted.target))
    }
}

impl Session {
    pub fn info(&self) -> &Arc<SessionInfo> {
        self.guard.info()
    }

    /// The session's recording, for its channels.
    pub fn recording(&self) -> Option<super::record::SessionRec> {
        self.recording.clone()
    }

    /// Seals the recording (if any) into the session's end event; called
    /// once the sockets are closed, before the session is dropped.
    pub fn seal(&self, grants: &Grants) -> impl Future<Output = ()> + Send + 'static {
        let rec = self.recording.clone();
        let info = self.info().clone();
        let recordings = grants.recordings().clone();
        async move {
            if let Some(r) = rec {
                let detail = recordings
                    .seal(&info, &r.recording, RecordingKind::Ssh)
                    .await;
                let _ = info.recording_detail.set(detail);
            }
        }
    }

    /// The target is connected: the session counts as started from here.
    pub fn start(&self, detail: serde_json::Value) {
        self.guard.start(Some(detail));
    }

    /// Records why the session ends, unless a cause is recorded already.
    pub fn end(&self, reason: Reason) {
        self.guard.set_cause(Cause::new(reason));
    }

    /// Whether the session's grant has ended: its token is cancelled by
    /// the revoke itself, before any task of this connection runs, and at
    /// the expiry instant the session is over before its timer has run
    /// (an exec arriving a moment after the instant must not start).
    pub fn over(&self) -> bool {
        self.guard.token().is_cancelled() || self.guard.info().past_end()
    }

    /// The recorded cause of the end, or `Error` when none was recorded.
    pub fn cause(&self) -> Cause {
        self.info()
            .cause()
            .unwrap_or_else(|| Cause::new(Reason::Error))
    }

    /// The next warning, or the end. Cancel-safe (see the module doc).
    pub async fn next(&mut self) -> Notice {
        if let Some(cause) = &self.ended {
            return Notice::Ended(cause.clone());
        }
        let warnings = async {
            match self.warnings.as_mut() {
                Some(w) => match w.recv().await {
                    Some(text) => text,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            cause = &mut self.ending => {
                self.ended = Some(cause.clone());
                Notice::Ended(cause)
            }
            text = warnings => Notice::Warning(text),
        }
    }

    /// The end of the session, ignoring warnings. Cancel-safe.
    pub async fn ended(&mut self) -> Cause {
        loop {
            if let Notice::Ended(cause) = self.next().await {
                return cause;
            }
        }
    }
}
