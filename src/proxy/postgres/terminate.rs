//! Making sure a session's backend is gone when its grant ends.
//!
//! A CancelRequest is only a request: a backend can trap `query_canceled`
//! (a plpgsql `EXCEPTION WHEN query_canceled` in a loop) and keep working,
//! and a backend busy in such a loop does not read its socket, so neither
//! our Terminate message nor the closed socket reaches it until it next
//! writes to the client. So at a grant end the proxy cancels first, then
//! opens a short side connection with the target's own credential and
//! terminates the backend by pid (`pg_terminate_backend`), and polls
//! `pg_stat_activity` until the pid has left, all within
//! [`TERMINATE_DEADLINE`] so a revoke never hangs on a target.
//!
//! Privilege: PostgreSQL lets a role terminate backends of roles it is a
//! member of (and any non-superuser backend with `pg_signal_backend`). The
//! side connection logs in as the target's upstream role, which is the role
//! of the session's backend (PostgreSQL checks the login role, which `SET
//! ROLE` does not change), so no extra privilege is needed. Should the side
//! connection fail (no free slot under `max_connections` or the role's
//! `CONNECTION LIMIT`) or the signal be refused, the outcome is "not
//! confirmed": a warning in the log and `backend_confirmed_gone: false` in
//! the audit, never a hang.

use super::codec::{self, CodecError};
use super::stream::PgStream;
use super::upstream::{self, CancelTarget, UpstreamError};
use crate::config::Target;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The whole of cancel, side connection, terminate and confirmation.
pub const TERMINATE_DEADLINE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);
/// Results of our own two queries are a count or a boolean per row.
const MAX_RESULT_MESSAGE: usize = 64 * 1024;

/// What the proxy needs to reach a session's backend at the end.
pub struct Backend {
    pub cancel: CancelTarget,
    pub target: Target,
    /// The session's database (any database sees the whole cluster's
    /// `pg_stat_activity`; this one is known to exist and to admit the role).
    pub database: Option<String>,
    pub session: String,
}

impl Backend {
    pub fn pid(&self) -> i32 {
        self.cancel.pid
    }

    /// Cancels the running query (when `in_flight`), then terminates the
    /// backend and waits for it to leave `pg_stat_activity`. True when the
    /// backend is confirmed gone within the deadline.
    pub async fn make_sure_gone(&self, in_flight: bool) -> bool {
        let sid = &self.session;
        let pid = self.pid();
        let run = async {
            if in_flight {
                match upstream::cancel(&self.cancel).await {
                    Ok(()) => {
                        tracing::info!(session = %sid, pid, "cancelled the running query upstream")
                    }
                    Err(e) => {
                        tracing::warn!(session = %sid, error = %e, "could not cancel the running query upstream")
                    }
                }
            }
            self.terminate().await
        };
        match tokio::time::timeout(TERMINATE_DEADLINE, run).await {
            Ok(Ok(())) => {
                tracing::info!(session = %sid, pid, "backend confirmed gone");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(session = %sid, pid, error = %e, "could not confirm the backend is gone");
                false
            }
            Err(_) => {
                tracing::warn!(session = %sid, pid, "backend still present {}s after the grant ended", TERMINATE_DEADLINE.as_secs());
                false
            }
        }
    }

    async fn terminate(&self) -> Result<(), UpstreamError> {
        let mut params = vec![(
            "application_name".to_string(),
            format!("jitgate:terminate:{}", self.session),
        )];
        if let Some(db) = &self.database {
            params.push(("database".to_string(), db.clone()));
        }
        let mut up = upstream::connect(&self.target, &params).await?;
        let s = &mut up.stream;
        let pid = self.pid();
        // Zero rows: already gone. A row with false: the signal failed
        // (PostgreSQL says why in a WARNING); we still wait and see.
        simple_query(
            s,
            &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = {pid}"),
        )
        .await?;
        loop {
            let rows = simple_query(
                s,
                &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"),
            )
            .await?;
            if rows.first().and_then(|r| r.first()).map(String::as_str) == Some("0") {
                let _ = s.write_all(&codec::message(b'X', &[])).await;
                let _ = s.shutdown().await;
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// One statement over the simple query protocol: the rows' first columns
/// (as text; NULL as empty), or the server's error.
async fn simple_query(s: &mut PgStream, sql: &str) -> Result<Vec<Vec<String>>, UpstreamError> {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&codec::message(b'Q', &q))
        .await
        .map_err(CodecError::from)?;
    s.flush().await.map_err(CodecError::from)?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (tag, body) = codec::read_message(s, MAX_RESULT_MESSAGE).await?;
        match tag {
            b'D' => rows.push(data_row(&body).ok_or(CodecError::Malformed("data row"))?),
            b'E' => error = Some(codec::error_fields(&body)),
            b'Z' => {
                return match error {
                    Some(f) => Err(UpstreamError::Rejected(f)),
                    None => Ok(rows),
                }
            }
            _ => {}
        }
    }
}

fn data_row(body: &[u8]) -> Option<Vec<String>> {
    let n = i16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut at = 2usize;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = i32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            out.push(String::new());
            continue;
        }
        let v = body.get(at..at + len as usize)?;
        at += len as usize;
        out.push(String::from_utf8_lossy(v).into_owned());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_parse_and_truncated_ones_do_not() {
        let mut b = vec![0, 2];
        b.extend(1i32.to_be_bytes());
        b.push(b'0');
        b.extend((-1i32).to_be_bytes());
        assert_eq!(data_row(&b), Some(vec!["0".to_string(), String::new()]));
        assert_eq!(data_row(&b[..5]), None);
    }
}
