//! SSH front end: a terminating SSH proxy on russh. The engineer logs in as
//! `TARGET@proxy` with their own key; the proxy logs in to the target with
//! the target's credential and a pinned host key, and relays each channel.
//! At the grant's end every channel gets a farewell on stderr and both
//! connections are closed, forcibly if a peer does not cooperate.

pub mod admit;
pub mod channel;
pub mod conn;
pub mod jump;
pub mod keys;
pub mod names;
pub mod open;
pub mod server;
pub mod shared;
pub mod socket;
pub mod upstream;
