//! jitgate: a just-in-time access proxy that owns every connection made under
//! a grant, so no session outlives its grant.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod audit_anchor;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod grants;
pub mod identity;
pub mod ids;
pub mod logging;
pub mod metrics;
pub mod metrics_http;
pub mod notify;
pub mod proxy;
pub mod recording;
pub mod relay;
pub mod reload;
pub mod sd_notify;
pub mod secrets;
pub mod sessions;
pub mod ssh_ca;
pub mod store;
pub mod text;
pub mod tls;
