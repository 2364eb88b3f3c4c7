//! Per-source accounting of unauthenticated connections, so one client
//! cannot take a listener's whole `MAX_UNAUTHENTICATED` budget.
//!
//! A source holds at most `MAX_UNAUTHENTICATED_PER_SOURCE` slots; further
//! connections from it wait, unread, for one of its slots (within their
//! handshake deadline, which runs from accept: see `accept`) (a connection pool opened through `jitgate connect` is a legitimate
//! burst from one address), up to `MAX_WAITING_PER_SOURCE`; beyond that, and
//! beyond `MAX_WAITING` per listener, they are refused. A waiting connection
//! costs a file descriptor and a parked task, no TLS or parser state, and
//! none of the listener-wide budget that other sources use.
//!
//! A source is one IPv4 address or one IPv6 /64: a single host usually owns
//! a whole /64, so counting IPv6 addresses one by one would multiply the cap
//! by 2^64. IPv4-mapped IPv6 addresses count as their IPv4 address. The map
//! holds only sources with a connection holding or waiting for a slot (an
//! entry is removed when the last one goes), so it is bounded by those.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Unauthenticated connections one source may have in progress per listener.
pub const MAX_UNAUTHENTICATED_PER_SOURCE: usize = 64;
/// Connections one source may have waiting for a slot per listener.
pub const MAX_WAITING_PER_SOURCE: usize = 1024;
/// Connections waiting for a slot per listener, all sources together.
pub const MAX_WAITING: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    V4(u32),
    /// The top 64 bits of the address.
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V4(a) => Source::V4(u32::from(a)),
            IpAddr::V6(a) => Source::V6((u128::from(a) >> 64) as u64),
        }
    }
}

struct Entry {
    slots: Arc<Semaphore>,
    /// Connections holding or waiting for one of `slots`.
    members: usize,
}

#[derive(Default)]
struct Table {
    entries: HashMap<Source, Entry>,
    /// Sum over sources of their members beyond `cap`.
    waiting: usize,
}

#[derive(Clone)]
pub struct Sources {
    cap: usize,
    waiting_per_source: usize,
    waiting: usize,
    table: Arc<Mutex<Table>>,
}

impl Sources {
    pub fn new(cap: usize, waiting_per_source: usize, waiting: usize) -> Sources {
        Sources {
            cap,
            waiting_per_source,
            waiting,
            table: Arc::new(Mutex::new(Table::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Membership for a new connection from `ip`, or None when its source,
    /// or the listener, already has as many connections waiting as allowed.
    pub fn join(&self, ip: IpAddr) -> Option<Member> {
        let source = Source::of(ip);
        let mut guard = self.lock();
        let t = &mut *guard;
        let cap = self.cap;
        let entry = t.entries.entry(source).or_insert_with(|| Entry {
            slots: Arc::new(Semaphore::new(cap)),
            members: 0,
        });
        let waits = entry.members >= cap;
        if waits && (entry.members >= cap + self.waiting_per_source || t.waiting >= self.waiting) {
            if entry.members == 0 {
                t.entries.remove(&source);
            }
            return None;
        }
        entry.members += 1;
        let slots = entry.slots.clone();
        if waits {
            t.waiting += 1;
        }
        Some(Member {
            source,
            slots,
            sources: self.clone(),
        })
    }

    /// How many sources have a connection holding or waiting for a slot.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One connection of a source; dropping it (after its slot, if any) leaves.
pub struct Member {
    source: Source,
    slots: Arc<Semaphore>,
    sources: Sources,
}

impl Member {
    /// One of the source's slots, now, if one is free.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// One of the source's slots, once one is free.
    pub async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let cap = self.sources.cap;
        let mut guard = self.sources.lock();
        let t = &mut *guard;
        if let Some(e) = t.entries.get_mut(&self.source) {
            if e.members > cap {
                t.waiting -= 1;
            }
            e.members -= 1;
            if e.members == 0 {
                t.entries.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn slots_per_source_then_waiting_then_refusal() {
        let s = Sources::new(2, 1, 100);
        let a = s.join(ip("10.0.0.1")).unwrap();
        let a_slot = a.try_slot().unwrap();
        let b = s.join(ip("10.0.0.1")).unwrap();
        let _b_slot = b.try_slot().unwrap();
        // The third connection is let in to wait: no slot is free.
        let c = s.join(ip("10.0.0.1")).unwrap();
        assert!(c.try_slot().is_none());
        // The fourth is refused.
        assert!(s.join(ip("10.0.0.1")).is_none());
        // Another source is unaffected.
        let other = s.join(ip("10.0.0.2")).unwrap();
        assert!(other.try_slot().is_some());
        // A freed slot goes to the waiting one.
        drop(a_slot);
        drop(a);
        assert!(c.try_slot().is_some());
    }

    #[test]
    fn the_listener_wide_waiting_bound_holds() {
        let s = Sources::new(1, 10, 2);
        let held: Vec<_> = (1..=3u8)
            .map(|i| {
                let m = s.join(IpAddr::from([10, 0, 0, i])).unwrap();
                let p = m.try_slot().unwrap();
                (m, p)
            })
            .collect();
        let _w1 = s.join(ip("10.0.0.1")).unwrap();
        let _w2 = s.join(ip("10.0.0.2")).unwrap();
        assert!(s.join(ip("10.0.0.3")).is_none(), "a third waiter");
        // A source with a free slot still gets in.
        assert!(s.join(ip("10.0.0.4")).is_some());
        drop(held);
    }

    #[test]
    fn entries_are_removed_when_the_last_member_goes() {
        let s = Sources::new(4, 0, 0);
        let members: Vec<_> = (0..100u8)
            .map(|i| s.join(IpAddr::from([10, 0, 1, i])).unwrap())
            .collect();
        assert_eq!(s.len(), 100);
        drop(members);
        assert!(s.is_empty());
        let _full: Vec<_> = (0..4).map(|_| s.join(ip("10.9.9.9")).unwrap()).collect();
        assert!(s.join(ip("10.9.9.9")).is_none());
        assert!(s
            .join(ip("10.9.9.8"))
            .is_some_and(|m| m.try_slot().is_some()));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let s = Sources::new(1, 0, 0);
        let _a = s.join(ip("2001:db8:1:2::1")).unwrap();
        assert!(s.join(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(s.join(ip("2001:db8:1:3::1")).is_some());
        let _v4 = s.join(ip("192.0.2.7")).unwrap();
        assert!(s.join(ip("::ffff:192.0.2.7")).is_none());
    }
}
