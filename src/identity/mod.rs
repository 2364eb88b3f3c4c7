//! Sign-in through the organisation's OpenID provider (SPEC "Sign-in",
//! docs/identity.md): the provider client, the login flows, and the sign-in
//! tokens (`jgs_...`) the admin API accepts besides static tokens.

pub mod confirm;
pub mod cookies;
pub mod flow;
mod http;
pub mod provider;
pub mod rate;

pub use flow::{FlowError, Identity};
