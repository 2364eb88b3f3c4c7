//! The session table and termination engine shared by every front end.
//!
//! Invariants:
//! - Every live session is in the table from admission until both of its
//!   sockets are closed; its `SessionGuard` removes it and fires `closed` on
//!   drop (panics included), so "closed" cannot be signalled early or missed.
//! - Each grant has one cancellation token; each session's token is a child
//!   of it. Ending a grant records the cause, then cancels the token, so a
//!   session admitted concurrently with the end observes a cancelled token at
//!   once. Ended grants leave a tombstone so a late admission cannot revive them.
//! - `end_*` calls return only after the affected sessions report closed (or a
//!   bound passes, which is logged); the count they return is of sessions
//!   confirmed closed.

mod cause;
pub mod observer;
mod snapshot;
mod table;
mod timers;

pub use cause::{EndCause, EndReason};
pub use snapshot::SessionSnapshot;
pub use table::{
    Admission, AdmitError, Observers, SessionGuard, SessionInfo, SessionObserver, SessionTable,
    WarningSink,
};
pub use timers::EndTimers;
