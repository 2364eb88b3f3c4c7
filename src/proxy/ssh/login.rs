//! The login of one engineer connection, owned by its task (`conn`):
//! identifying the engineer by key, failed-key accounting against the
//! source's limit with `auth.failed` audit events, and admission with the
//! login to the target.
//!
//! Invariants:
//! - The login name (the target's, or the user's own for a jump login) is
//!   chosen by the client: it is bounded (`names::bounded`) before it is
//!   logged, audited or shown.
//! - One rejected key or certificate per connection counts as a failed
//!   attempt (an agent offering several keys is not a brute force); a
//!   source over the limit is refused without looking further. A key or
//!   certificate that identifies an engineer clears the source's count
//!   (`AuthLimiter::succeeded`): an agent that offers an unregistered key
//!   before the right one is no brute force either, and SSH keys cannot be
//!   guessed, so a count that a good login clears hides no guessing.
//! - Only the engineer's own failures (a key or certificate refused, or an
//!   admission refused for their grant or lock) are audited as
//!   `auth.failed`. A target that cannot be reached or a store that is
//!   down refuses the login too, but is logged with its blame, never
//!   audited as a failed authentication nor counted against the source.
//! - A key offered without a signature is answered yes unless the source
//!   is blocked: a certificate's key reaches that callback bare, so only
//!   the signed attempt (`login`) can tell a certificate from an unknown
//!   key. The refusal, and its count, come there.
//! - A certificate identifies the user it names (`crate::ssh_ca::check`),
//!   who need not be in `[[users]]`, and only while that user is not
//!   locked; a store that cannot say refuses the login.
//! - A known engineer whose access is refused is still let in, with
//!   `refusal` set: their channels show why instead of a bare
//!   "Permission denied". Such a connection has no session and no target.

use super::control::{Blame, Reason, Refused, Session, SshFrontEnd};
use super::event::Credential;
use super::keys;
use super::names;
use super::upstream::{self, Upstream};
use russh::keys::{Certificate, HashAlg};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// An admitted terminating login: its session, started, and the target's
/// connection.
pub struct Admission {
    pub session: Session,
    pub upstream: Arc<Upstream>,
}

pub struct Login {
    fe: Arc<SshFrontEnd>,
    peer: SocketAddr,
    kill: CancellationToken,
    /// The login name, bounded.
    pub target: String,
    /// Set when the engineer is identified but gets no shell here (no
    /// grant, or a jump connection): shown on their channels, after
    /// "jitgate: ".
    pub refusal: Option<String>,
    /// A jump connection (`ssh -J USER@proxy TARGET`): the jitgate user.
    pub jump_user: Option<String>,
    offer_failed: bool,
}

impl Login {
    pub fn new(fe: Arc<SshFrontEnd>, peer: SocketAddr, kill: CancellationToken) -> Login {
        Login {
            fe,
            peer,
            kill,
            target: String::new(),
            refusal: None,
            jump_user: None,
            offer_failed: false,
        }
    }

    /// Whether a key offered (unsigned) for `name` may go on to a signed
    /// attempt: yes unless the source is blocked (see the module doc).
    pub fn key_offered(&mut self, name: &str) -> bool {
        self.target = names::bounded(name);
        !self.blocked()
    }

    /// A verified key or certificate for `name`: whether the login is
    /// accepted, and the admitted session when it is one with a shell on
    /// the target.
    pub async fn login(&mut self, name: &str, cred: &Credential) -> (bool, Option<Admission>) {
        self.target = names::bounded(name);
        if self.blocked() {
            return (false, None);
        }
        let cfg = self.fe.config_now();
        let (user, proof) = match cred {
            Credential::Key(pk) => match keys::user_for_key(&cfg, pk) {
                Some(user) => (user, format!("key {}", keys::fingerprint(pk))),
                None => {
                    let why = format!("unknown key {}", keys::fingerprint(pk));
                    self.failed("unknown", why, "auth_failed");
                    return (false, None);
                }
            },
            Credential::Certificate(cert) => match self.certified(cert).await {
                Ok(user) => (user, certificate_text(cert)),
                Err(refused) => {
                    let why = format!("{} ({})", refused.why, certificate_text(cert));
                    if refused.blame == Blame::Downstream {
                        self.failed(&refused.actor, why, refused.reason);
                    } else {
                        self.fe.rejected(refused.reason);
                        let blame = refused.blame.as_str();
                        tracing::warn!(actor = %refused.actor, target = %self.target, blame, "ssh login refused: {why}");
                    }
                    return (false, None);
                }
            },
        };
        // A target's name selects the terminating mode; the key owner's own
        // name (when no target has it) a jump connection.
        if !cfg.targets.contains_key(&self.target) && self.target == user {
            tracing::info!(%user, key = %proof, "ssh jump connection");
            self.refusal = Some(format!(
                "{user}@ is a jump login: it runs no shell or command; use `ssh -J {user}@PROXY TARGET`, or `ssh TARGET@PROXY` for a shell"
            ));
            self.jump_user = Some(user);
            return (true, None);
        }
        match self.admit(&user).await {
            Ok(a) => {
                // Admitted, not merely identified: a valid key alone (a
                // locked user's, or one without a grant) must not wipe the
                // count of the other keys tried from this source.
                for key in self.limiter_keys() {
                    self.fe.limiter.succeeded(&key);
                }
                tracing::info!(%user, target = %self.target, key = %proof, "ssh session admitted");
                (true, Some(a))
            }
            Err(r) => {
                let (why, reason, blame) = (r.why, r.reason, r.blame.as_str());
                self.fe.rejected(reason);
                if r.blame == Blame::Downstream {
                    tracing::info!(%user, target = %self.target, reason, blame, "ssh access refused: {why}");
                    self.fe.audit_failure(self.peer, &user, &self.target, &why);
                } else {
                    tracing::warn!(%user, target = %self.target, reason, blame, "ssh access refused: {why}");
                }
                self.refusal = Some(format!("access to {} refused: {why}", self.target));
                (true, None)
            }
        }
    }

    /// The user a certificate identifies, or why it is refused.
    async fn certified(&self, cert: &Certificate) -> Result<String, CertRefused> {
        let now = (crate::clock::now_ms() / 1000).max(0) as u64;
        let user = self.fe.ca.check(cert, now).map_err(|why| CertRefused {
            actor: "unknown".into(),
            why,
            reason: "auth_failed",
            blame: Blame::Downstream,
        })?;
        self.fe
            .certificate_user_allowed(&user)
            .await
            .map_err(|r| CertRefused {
                actor: user.clone(),
                why: r.why,
                reason: r.reason,
                blame: r.blame,
            })?;
        // A certificate lives only as long as what obtained it: an IdP
        // sign-in (a logout ends it on every instance) or a static token
        // (removing or replacing the token in the config ends it).
        let bound = crate::ssh_ca::binding_of(cert).map_err(|why| CertRefused {
            actor: user.clone(),
            why,
            reason: "auth_failed",
            blame: Blame::Downstream,
        })?;
        let checked = match &bound {
            Some(crate::ssh_ca::Binding::Signin(id)) => self.fe.certificate_signin_live(id).await,
            Some(crate::ssh_ca::Binding::Token(t)) => self.fe.certificate_token_current(&user, t),
            None => Ok(()),
        };
        checked.map_err(|r| CertRefused {
            actor: user.clone(),
            why: r.why,
            reason: r.reason,
            blame: r.blame,
        })?;
        Ok(user)
    }

    /// Counts one failed attempt from this source (once per connection),
    /// audits it with `actor` and `why`, and blocks the source over its
    /// limit. `reason`: the rejection's metric label.
    fn failed(&mut self, actor: &str, why: String, reason: &'static str) {
        self.fe.rejected(reason);
        if std::mem::replace(&mut self.offer_failed, true) {
            return;
        }
        let blocked = self.fe.limiter.failed(&self.limiter_keys());
        let why = format!("{why}{}", if blocked { "; source blocked" } else { "" });
        tracing::info!(%actor, target = %self.target, "ssh login refused: {why}");
        self.fe.audit_failure(self.peer, actor, &self.target, &why);
    }

    fn limiter_keys(&self) -> Vec<String> {
        vec![format!("ip:{}", self.peer.ip())]
    }

    /// A source over the failure limit is refused without looking further.
    fn blocked(&self) -> bool {
        if self.fe.limiter.check(&self.limiter_keys()).is_err() {
            self.fe.rejected("auth_failed");
            return true;
        }
        false
    }

    /// Identified engineer: admission, session, target login.
    async fn admit(&self, user: &str) -> Result<Admission, Refused> {
        let (session, target) = self.fe.admit(&self.target, user, self.peer, true).await?;
        match upstream::connect(&target, &self.kill).await {
            Ok(up) => {
                session.start(json!({"upstream_user": target.upstream.user}));
                let upstream = Arc::new(up);
                Ok(Admission { session, upstream })
            }
            Err(e) => {
                tracing::warn!(target = %self.target, "ssh upstream failed: {e}");
                session.end(Reason::Error);
                Err(Refused::unreachable(format!(
                    "cannot reach {}: {e}",
                    self.target
                )))
            }
        }
    }
}

/// A certificate refused: the actor (its user once the certificate is
/// known to be ours, else "unknown"), why, the metric label (`locked` for
/// a locked user, `upstream_error` for a lock check that failed, else
/// `auth_failed`) and whose fault it is (a failed lock check is ours).
struct CertRefused {
    actor: String,
    why: String,
    reason: &'static str,
    blame: Blame,
}

/// How a certificate is named in logs and the audit: serial and key.
/// The key id is the CA's (or a forger's) text: escaped and bounded.
fn certificate_text(cert: &Certificate) -> String {
    let key = russh::keys::PublicKey::new(cert.public_key().clone(), "");
    format!(
        "certificate {:?} serial {} key {}",
        names::bounded(cert.key_id()),
        cert.serial(),
        key.fingerprint(HashAlg::Sha256)
    )
}
