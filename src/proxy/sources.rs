//! Per-source accounting of unauthenticated connections, so one client
//! cannot take a listener's whole `MAX_UNAUTHENTICATED` budget.
//!
//! A source is one IPv4 address or one IPv6 /64: a single host usually owns
//! a whole /64, so counting IPv6 addresses one by one would let it open
//! 2^64 times the cap. IPv4-mapped IPv6 addresses count as their IPv4
//! address. The map holds only sources with a live slot (an entry is removed
//! when its count drops to zero), so it never holds more entries than there
//! are unauthenticated connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Unauthenticated connections one source may hold per listener.
pub const MAX_UNAUTHENTICATED_PER_SOURCE: u32 = 64;

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

#[derive(Clone)]
pub struct Sources {
    cap: u32,
    held: Arc<Mutex<HashMap<Source, u32>>>,
}

impl Sources {
    pub fn new(cap: u32) -> Sources {
        Sources {
            cap,
            held: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for `ip`, or None when its source already holds `cap`.
    pub fn try_take(&self, ip: IpAddr) -> Option<Slot> {
        let source = Source::of(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(source).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Slot {
            source,
            held: self.held.clone(),
        })
    }

    /// How many sources hold at least one slot.
    pub fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One unauthenticated connection of a source; dropping it frees the slot.
pub struct Slot {
    source: Source,
    held: Arc<Mutex<HashMap<Source, u32>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.source);
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
    fn the_cap_holds_per_source_and_slots_come_back() {
        let s = Sources::new(2);
        let a = s.try_take(ip("10.0.0.1")).unwrap();
        let _b = s.try_take(ip("10.0.0.1")).unwrap();
        assert!(s.try_take(ip("10.0.0.1")).is_none());
        let _other = s.try_take(ip("10.0.0.2")).unwrap();
        drop(a);
        let _c = s.try_take(ip("10.0.0.1")).unwrap();
        assert!(s.try_take(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn entries_are_removed_at_zero() {
        let s = Sources::new(4);
        let slots: Vec<_> = (0..100u8)
            .map(|i| s.try_take(IpAddr::from([10, 0, 1, i])).unwrap())
            .collect();
        assert_eq!(s.len(), 100);
        drop(slots);
        assert!(s.is_empty());
        // A refused attempt leaves nothing behind either.
        let _full: Vec<_> = (0..4)
            .map(|_| s.try_take(ip("10.9.9.9")).unwrap())
            .collect();
        assert!(s.try_take(ip("10.9.9.9")).is_none());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let s = Sources::new(1);
        let _a = s.try_take(ip("2001:db8:1:2::1")).unwrap();
        assert!(s.try_take(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(s.try_take(ip("2001:db8:1:3::1")).is_some());
        let _v4 = s.try_take(ip("192.0.2.7")).unwrap();
        assert!(s.try_take(ip("::ffff:192.0.2.7")).is_none());
    }
}
