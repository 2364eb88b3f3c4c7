//! Front ends: each accepts engineers' connections, authenticates them
//! against a grant, registers a session and relays to the target.

pub mod accept;
pub mod limiter;
pub mod postgres;
pub mod sources;
pub mod ssh;
pub mod tcp;
