//! The names of notification events: the vocabulary `[[notify]] events`
//! is checked against, and the `event` key of every body the store queues
//! (src/store/event.rs builds the bodies). One list, so a name the config
//! accepts is a name that is sent.

pub const REQUEST_CREATED: &str = "request.created";
pub const REQUEST_APPROVED: &str = "request.approved";
pub const REQUEST_DENIED: &str = "request.denied";
pub const GRANT_EXPIRING: &str = "grant.expiring";
pub const GRANT_ENDED: &str = "grant.ended";
pub const SESSION_ENDED: &str = "session.ended";
pub const USER_LOCKED: &str = "user.locked";
pub const GRANT_EXTENDED: &str = "grant.extended";
pub const GRANT_BREAK_GLASS: &str = "grant.break_glass";
pub const GRANT_REVIEWED: &str = "grant.reviewed";
/// A signed audit checkpoint, sent to receivers that name it as a witness
/// outside the store (never matched by `*`).
pub const AUDIT_CHECKPOINT: &str = "audit.checkpoint";

/// Every event a receiver may name.
pub const ALL: &[&str] = &[
    REQUEST_CREATED,
    REQUEST_APPROVED,
    REQUEST_DENIED,
    GRANT_EXPIRING,
    GRANT_ENDED,
    SESSION_ENDED,
    USER_LOCKED,
    GRANT_EXTENDED,
    GRANT_BREAK_GLASS,
    GRANT_REVIEWED,
    AUDIT_CHECKPOINT,
];
