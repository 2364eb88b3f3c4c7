//! SSH front end: a terminating SSH proxy on russh. The engineer logs in as
//! `TARGET@proxy` with their own key; the proxy logs in to the target with
//! the target's credential and a pinned host key, and relays each channel.
//! At the grant's end every channel gets a farewell on stderr and both
//! connections are closed, forcibly if a peer does not cooperate.
//!
//! One task per connection owns all of its state (`conn`); the russh
//! handler only turns callbacks into events for it (`handler`, `event`).
//! Modules and what each uses (no cycles; none uses one above it):
//! - `server`: the listener → `conn`, `control`, `keys`
//! - `conn`: the connection's task → `handler`, `login`, `jump`,
//!   `farewell`, `channels`, `channel`, `event`, `upstream`, `open`,
//!   `control`, `names`, `socket`
//! - `handler`: russh callbacks as events → `event`, `channel`
//! - `login`: keys, certificates (`crate::ssh_ca`), limits, admission →
//!   `upstream`, `control`, `keys`, `names`, `event`
//! - `jump`: `ssh -J` channels → `event`, `channel`, `upstream`, `control`
//! - `farewell`: the end said to both sides → `channel`, `upstream`
//! - `channels`: the channel registry → `event`, `channel`, `control`
//! - `event` → `channel`; `channel`: one relayed channel → `control`,
//!   `record` (its part of the session's recording → `sftp`)
//! - `upstream`: the target's connection → `keys`, `socket`
//! - `control`: the only door to grants, sessions, metrics and the store;
//!   `keys` (with the algorithm list), `names`, `open`, `socket`: leaves.

pub mod channel;
pub mod channels;
pub mod cmd;
pub mod conn;
pub mod control;
pub mod event;
pub mod farewell;
pub mod handler;
pub mod jump;
pub mod keys;
pub mod login;
pub mod names;
pub mod open;
pub mod record;
pub mod server;
pub mod sftp;
pub mod socket;
pub mod upstream;
