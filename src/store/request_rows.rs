//! Reading and writing one request row, shared by the request and the
//! extension transactions (both create requests; both read one back).

use super::{ApprovalRecord, NewRequest, RequestKind, RequestRecord, RequestState, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

pub(super) const COLS: &str = "id, requester, target, policy, reason, duration_ms, approvals_required, state, created_at, expires_at, decided_at, decided_by, decision_reason, grant_id, kind, extends_grant, starts_at";

fn from_row(row: &AnyRow) -> Result<RequestRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(RequestRecord {
        id: row.try_get("id")?,
        requester: row.try_get("requester")?,
        target: row.try_get("target")?,
        policy: row.try_get("policy")?,
        reason: row.try_get("reason")?,
        duration_ms: row.try_get("duration_ms")?,
        approvals_required: row.try_get("approvals_required")?,
        state: RequestState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("bad request state {state:?}")))?,
        created_at_ms: row.try_get("created_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        decided_at_ms: row.try_get("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        decision_reason: row.try_get("decision_reason")?,
        grant_id: row.try_get("grant_id")?,
        approvals: Vec::new(),
        kind: {
            let k: String = row.try_get("kind")?;
            RequestKind::parse(&k)
                .ok_or_else(|| StoreError::Corrupt(format!("bad request kind {k:?}")))?
        },
        extends_grant: row.try_get("extends_grant")?,
        starts_at_ms: row.try_get("starts_at")?,
    })
}

pub(super) async fn load(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<RequestRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLS} FROM requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut rec = from_row(&row)?;
    let rows = sqlx::query(
        "SELECT approver, comment, at FROM approvals WHERE request_id = $1 ORDER BY at, approver",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        rec.approvals.push(ApprovalRecord {
            approver: r.try_get("approver")?,
            comment: r.try_get("comment")?,
            at_ms: r.try_get("at")?,
        });
    }
    Ok(Some(rec))
}

pub(super) async fn insert_request(
    conn: &mut AnyConnection,
    req: &NewRequest,
) -> Result<(), StoreError> {
    let kind = match req.extends_grant {
        Some(_) => RequestKind::Extension,
        None => RequestKind::Access,
    };
    sqlx::query(
            "INSERT INTO requests (id, requester, target, policy, reason, duration_ms, approvals_required, state, created_at, expires_at, kind, extends_grant, starts_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11, $12)",
        )
        .bind(&req.id)
        .bind(&req.requester)
        .bind(&req.target)
        .bind(&req.policy)
        .bind(&req.reason)
        .bind(req.duration_ms)
        .bind(req.approvals_required)
        .bind(req.created_at_ms)
        .bind(req.expires_at_ms)
        .bind(kind.as_str())
        .bind(&req.extends_grant)
        .bind(req.starts_at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
