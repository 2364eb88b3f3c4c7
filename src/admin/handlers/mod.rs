//! Route handlers, one module per resource. Each receives the authenticated
//! caller and a config snapshot taken once for the whole request.

pub mod audit;
pub mod grants;
pub mod requests;
pub mod sessions;
pub mod system;
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
