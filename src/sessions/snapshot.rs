//! A session at one instant, as the API lists it: this instance's, taken
//! from the live entry, or a peer's, from the shared rows.

use super::SessionInfo;
use std::sync::atomic::Ordering;

/// A session as it stood at one instant: the live entry's fields with its
/// counters read (this instance's, from [`SessionInfo::snapshot`], or a
/// peer's, from the shared rows). Serializes to the API's session object,
/// times in RFC 3339 UTC.
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub id: String,
    pub grant_id: String,
    pub user: String,
    pub target: String,
    pub kind: String,
    pub client_addr: String,
    pub instance: String,
    pub granted_at_ms: i64,
    pub started_at_ms: i64,
    pub expires_at_ms: i64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub last_activity_ms: i64,
    /// When it was taken (the API's `remaining_seconds` counts from here).
    pub taken_at_ms: i64,
}

impl serde::Serialize for SessionSnapshot {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::clock::rfc3339;
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("SessionSnapshot", 14)?;
        m.serialize_field("id", &self.id)?;
        m.serialize_field("grant_id", &self.grant_id)?;
        m.serialize_field("user", &self.user)?;
        m.serialize_field("target", &self.target)?;
        m.serialize_field("kind", &self.kind)?;
        m.serialize_field("client_addr", &self.client_addr)?;
        m.serialize_field("instance", &self.instance)?;
        m.serialize_field("granted_at", &rfc3339(self.granted_at_ms))?;
        m.serialize_field("started_at", &rfc3339(self.started_at_ms))?;
        m.serialize_field("expires_at", &rfc3339(self.expires_at_ms))?;
        let remaining = ((self.expires_at_ms - self.taken_at_ms).max(0) + 999) / 1000;
        m.serialize_field("remaining_seconds", &remaining)?;
        m.serialize_field("bytes_in", &self.bytes_in)?;
        m.serialize_field("bytes_out", &self.bytes_out)?;
        m.serialize_field("last_activity_at", &rfc3339(self.last_activity_ms))?;
        m.end()
    }
}

impl SessionInfo {
    /// This session now, as listed by the API.
    pub fn snapshot(&self, instance: &str) -> SessionSnapshot {
        SessionSnapshot {
            id: self.id.clone(),
            grant_id: self.grant_id.clone(),
            user: self.user.clone(),
            target: self.target.clone(),
            kind: self.kind.as_str().to_string(),
            client_addr: self.client_addr.clone(),
            instance: instance.to_string(),
            granted_at_ms: self.granted_at_ms,
            started_at_ms: self.started_at_ms,
            expires_at_ms: self.expires_at_ms(),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            last_activity_ms: self.last_activity_ms.load(Ordering::Relaxed),
            taken_at_ms: self.clock.now_ms(),
        }
    }
}
