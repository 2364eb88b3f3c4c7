//! Route handlers, one module per resource. Each receives the authenticated
//! caller and a config snapshot taken once for the whole request.

pub mod audit;
pub mod grants;
pub mod requests;
pub mod sessions;
pub mod ssh;
pub mod system;
pub mod targets;
pub mod users;

use super::AdminState;
use crate::config::Config;
use crate::grants::Caller;
use std::sync::Arc;

pub struct Ctx {
    pub state: Arc<AdminState>,
    pub caller: Caller,
    pub cfg: Arc<Config>,
}

/// Request bodies shared by several routes; unknown fields are a 400.
pub mod bodies {
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Reason {
        #[serde(default)]
        pub reason: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Comment {
        #[serde(default)]
        pub comment: String,
    }

    /// `POST /api/requests`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateRequest {
        pub target: String,
        pub duration: Option<String>,
        #[serde(default)]
        pub reason: String,
        /// RFC 3339: scheduled access.
        pub starts_at: Option<String>,
        /// Take access at once (a break_glass policy), reviewed afterwards.
        #[serde(default)]
        pub break_glass: bool,
    }

    /// `POST /v1/grants/{id}/review`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Review {
        pub verdict: String,
        #[serde(default)]
        pub comment: String,
    }

    /// `POST /v1/grants/{id}/extend`: time to add (default: the policy's
    /// default_duration) and why.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Extend {
        pub duration: Option<String>,
        #[serde(default)]
        pub reason: String,
    }

    /// Routes that take no input still reject unexpected fields.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Empty {}
}
