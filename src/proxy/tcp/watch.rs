//! The engineer's side of a grant's life in `jitgate connect`: checked at
//! start, then warned about on stderr at the policy's `warn_before` offsets
//! (as SSH and PostgreSQL users are warned in-band), and reported when it
//! ends. Each warning re-asks the proxy, so an ended grant is reported at
//! once and a moved end (an extension) is followed rather than guessed.

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

/// Runs until the grant is over, then tells `connect` to exit.
pub async fn watch(ctx: Arc<Ctx>, mut grant: GrantInfo) {
    let target = escape(&ctx.target);
    loop {
        let mut warns = grant.warn_before_s.clone();
        warns.sort_unstable_by(|a, b| b.cmp(a));
        let mut moved = false;
        for w in warns {
            let at = grant.expires_at_ms - (w as i64) * 1000;
            if at <= now_ms() {
                continue;
            }
            tokio::time::sleep_until(deadline(at)).await;
            match recheck(&ctx, &grant).await {
                Some(now) if now.expires_at_ms != grant.expires_at_ms => {
                    grant = now;
                    moved = true;
                    break;
                }
                Some(_) => eprintln!(
                    "jitgate: access to {target} ends in {}",
                    humantime::format_duration(Duration::from_secs(w))
                ),
                None => return,
            }
        }
        if moved {
            continue;
        }
        tokio::time::sleep_until(deadline(grant.expires_at_ms)).await;
        // The proxy ends the grant at this instant; give its timer a moment
        // so the answer is the ended grant, not the last of the live one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        match recheck(&ctx, &grant).await {
            Some(now) if now.expires_at_ms > grant.expires_at_ms => grant = now,
            Some(_) => {
                eprintln!("jitgate: access to {target} ended: the grant expired");
                ctx.ended.notify_one();
                return;
            }
            None => return,
        }
    }
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
