//! Records as stored, with their state machines.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Cancelled => "cancelled",
            RequestState::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RequestState::Pending,
            "approved" => RequestState::Approved,
            "denied" => RequestState::Denied,
            "cancelled" => RequestState::Cancelled,
            "expired" => RequestState::Expired,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantState {
    /// Approved, with a start in the future (scheduled access).
    Scheduled,
    Active,
    Expired,
    Revoked,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Scheduled => "scheduled",
            GrantState::Active => "active",
            GrantState::Expired => "expired",
            GrantState::Revoked => "revoked",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => GrantState::Scheduled,
            "active" => GrantState::Active,
            "expired" => GrantState::Expired,
            "revoked" => GrantState::Revoked,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ApprovalRecord {
    pub approver: String,
    pub comment: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub id: String,
    pub requester: String,
    pub target: String,
    pub policy: String,
    pub reason: String,
    pub duration_ms: i64,
    pub approvals_required: i64,
    pub state: RequestState,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    pub grant_id: Option<String>,
    pub approvals: Vec<ApprovalRecord>,
    /// `Access` asks for a new grant; `Extension` for more time on
    /// `extends_grant`, and its `duration_ms` is the time added.
    pub kind: RequestKind,
    pub extends_grant: Option<String>,
    /// When the grant should start (scheduled access); None: at approval.
    pub starts_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    Access,
    Extension,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Extension => "extension",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "access" => RequestKind::Access,
            "extension" => RequestKind::Extension,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub id: String,
    pub request_id: String,
    pub user: String,
    pub target: String,
    pub policy: String,
    pub state: GrantState,
    pub granted_at_ms: i64,
    pub expires_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub ended_by: Option<String>,
    pub end_comment: Option<String>,
    /// Set for scheduled access: the grant is in force from here.
    pub starts_at_ms: Option<i64>,
    /// Break-glass grants only: "pending", then "justified" or
    /// "unjustified" with who reviewed, why and when.
    pub review: Option<String>,
    pub reviewed_by: Option<String>,
    pub review_comment: Option<String>,
    pub reviewed_at_ms: Option<i64>,
}

impl GrantRecord {
    /// When the grant is (or was) first in force.
    pub fn start_ms(&self) -> i64 {
        self.starts_at_ms.unwrap_or(self.granted_at_ms)
    }

    /// Whether connections are allowed under it at `now`: active (or
    /// scheduled with its start passed, before its timer has flipped the
    /// state) and not past its end.
    pub fn in_force(&self, now: i64) -> bool {
        let started = match self.state {
            GrantState::Active => true,
            GrantState::Scheduled => self.start_ms() <= now,
            _ => false,
        };
        started && self.expires_at_ms > now
    }

    /// The start of a scheduled grant that has not started at `now`.
    pub fn starts_later(&self, now: i64) -> Option<i64> {
        (self.state == GrantState::Scheduled && self.start_ms() > now).then(|| self.start_ms())
    }
}

#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub grant_id: String,
    pub sha256: [u8; 32],
    /// `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, as PostgreSQL stores it.
    pub scram: String,
    pub issued_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct LockRecord {
    pub user: String,
    pub reason: String,
    pub locked_by: String,
    pub locked_at_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub state: Option<RequestState>,
    pub requester: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub state: Option<GrantState>,
    pub user: Option<String>,
    pub target: Option<String>,
    pub limit: i64,
}

/// A new request; with `grant` set it is approved on creation (approvals_required = 0).
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: String,
    pub requester: String,
    pub target: String,
    pub policy: String,
    pub reason: String,
    pub duration_ms: i64,
    pub approvals_required: i64,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// The grant an extension request would extend (None: a new grant).
    pub extends_grant: Option<String>,
    /// When the grant should start; None: at approval.
    pub starts_at_ms: Option<i64>,
    /// Taken at once without an approver, to be reviewed afterwards.
    pub break_glass: bool,
}

/// The result of one approval.
#[derive(Debug, Clone)]
pub enum ApproveOutcome {
    /// Recorded, more approvals needed.
    Recorded(Box<RequestRecord>),
    /// This approval completed the request; the grant exists.
    Granted(Box<RequestRecord>, Box<GrantRecord>),
    /// This approval completed an extension; the grant as extended, and
    /// its end before.
    Extended(Box<RequestRecord>, Box<GrantRecord>, i64),
}
