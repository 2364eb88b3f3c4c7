//! The engineer's side of a grant's life in `jitgate connect`: checked at
//! start, then warned about on stderr at the policy's `warn_before` offsets
//! (as SSH and PostgreSQL users are warned in-band), and reported when it
//! ends. Each warning re-asks the proxy, and so does a re-check every 30 s
//! in between, so an ended grant is reported at once and an extension is
//! reported ("extended until ...") and followed rather than guessed.

use super::dial::{open, Ctx};
use super::handshake::{Kind, Status};
use crate::clock::{deadline, now_ms};
use crate::text::escape;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct GrantInfo {
    pub grant_id: String,
    pub expires_at_ms: i64,
    #[serde(default)]
    pub warn_before_s: Vec<u64>,
}

/// Asks the proxy whether this target and secret would be admitted now.
/// `Err` is a failure to ask (unreachable proxy, TLS or pin mismatch);
/// `Ok(Err(why))` a refusal.
pub async fn check(ctx: &Ctx) -> anyhow::Result<Result<GrantInfo, String>> {
    let (_, reply) = open(ctx, Kind::Check, "").await?;
    match reply.status {
        Status::Ok => Ok(serde_json::from_str(&reply.message).map_err(|e| {
            format!("the proxy's answer could not be read ({e}); is it an older release?")
        })),
        Status::ProtocolError => Ok(Err(format!(
            "{} (a proxy older than this client cannot check a grant)",
            reply.message
        ))),
        _ => Ok(Err(reply.message)),
    }
}

/// How often `connect` re-asks the proxy between warnings, so an extension
/// is reported within this long (the tunnel carries the application's
/// bytes only; there is no channel for the proxy to speak on).
const RECHECK_EVERY_MS: i64 = 30_000;

/// Runs until the grant is over, then tells `connect` to exit.
pub async fn watch(ctx: Arc<Ctx>, mut grant: GrantInfo) {
    let target = escape(&ctx.target);
    // Warnings already given for the current end.
    let mut warned: Vec<u64> = Vec::new();
    loop {
        let now = now_ms();
        let next_warn = grant
            .warn_before_s
            .iter()
            .filter(|w| !warned.contains(w))
            .map(|w| (grant.expires_at_ms - (*w as i64) * 1000, *w))
            .filter(|(at, _)| *at > now)
            .min();
        let recheck_at = now + RECHECK_EVERY_MS;
        let (wake, what) = match next_warn {
            Some((at, w)) if at <= grant.expires_at_ms.min(recheck_at) => (at, Wake::Warn(w)),
            _ if grant.expires_at_ms <= recheck_at => (grant.expires_at_ms, Wake::End),
            _ => (recheck_at, Wake::Recheck),
        };
        tokio::time::sleep_until(deadline(wake)).await;
        if let Wake::End = what {
            // The proxy ends the grant at this instant; give its timer a
            // moment so the answer is the ended grant, not the last of the
            // live one.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let Some(now) = recheck(&ctx, &grant).await else {
            return;
        };
        if now.expires_at_ms > grant.expires_at_ms {
            eprintln!(
                "jitgate: access to {target} extended until {}",
                crate::clock::rfc3339(now.expires_at_ms)
            );
            grant = now;
            warned.clear();
            continue;
        }
        match what {
            Wake::Warn(w) => {
                warned.push(w);
                eprintln!(
                    "jitgate: access to {target} ends in {}",
                    humantime::format_duration(Duration::from_secs(w))
                );
            }
            Wake::End => {
                eprintln!("jitgate: access to {target} ended: the grant expired");
                ctx.ended.notify_one();
                return;
            }
            Wake::Recheck => {}
        }
    }
}

enum Wake {
    Warn(u64),
    End,
    Recheck,
}

/// The grant as the proxy sees it now; None (after saying why, and telling
/// `connect` to exit) when it is over. A proxy that cannot be asked is not
/// proof of anything: keep the last known end.
async fn recheck(ctx: &Ctx, last: &GrantInfo) -> Option<GrantInfo> {
    match check(ctx).await {
        Ok(Ok(g)) => Some(g),
        Ok(Err(why)) => {
            eprintln!(
                "jitgate: access to {} ended: {}",
                escape(&ctx.target),
                escape(&why)
            );
            ctx.ended.notify_one();
            None
        }
        Err(e) => {
            eprintln!("jitgate: could not ask the proxy about the grant: {e:#}");
            Some(last.clone())
        }
    }
}
