//! Cancel keys: each client gets its backend's real pid (so
//! `pg_backend_pid()`, NOTIFY pids and `pg_terminate_backend` of its own pid
//! agree with BackendKeyData) and a secret key minted by the proxy, mapped
//! here to the upstream backend's real key, so a client-side cancel reaches
//! the right backend and the upstream key never leaves the proxy.
//!
//! Two targets (two clusters) may have backends with the same pid, so a pid
//! names a small set of sessions and the key decides: keys are random,
//! unique per pid, and compared in constant time against every entry of the
//! pid (no early exit), so timing says nothing about which key was close. An
//! unknown (pid, key) is dropped silently, as PostgreSQL does. A session's
//! entry is forgotten when its [`Minted`] is dropped at session end.

use super::upstream::CancelTarget;
use dashmap::DashMap;
use rand::RngCore;
use std::sync::Arc;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

#[derive(Default)]
pub struct CancelKeys {
    /// Backend pid → the live sessions with that pid (usually one; one per
    /// target at most in practice, since a cluster's live pids are unique).
    map: DashMap<i32, Vec<([u8; 4], CancelTarget)>>,
}

/// Removes the key when the session ends.
pub struct Minted {
    keys: Arc<CancelKeys>,
    pub pid: i32,
    pub key: [u8; 4],
}

impl Drop for Minted {
    fn drop(&mut self) {
        if let dashmap::mapref::entry::Entry::Occupied(mut e) = self.keys.map.entry(self.pid) {
            e.get_mut().retain(|(k, _)| *k != self.key);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }
}

impl CancelKeys {
    /// A fresh key for the backend `target.pid`, unique among that pid's
    /// live sessions.
    pub fn mint(self: &Arc<Self>, target: CancelTarget) -> Minted {
        let mut rng = rand::rngs::OsRng;
        let pid = target.pid;
        let mut entries = self.map.entry(pid).or_default();
        let key = loop {
            let mut key = [0u8; 4];
            rng.fill_bytes(&mut key);
            if !entries.iter().any(|(k, _)| *k == key) {
                break key;
            }
        };
        entries.push((key, target));
        Minted {
            keys: self.clone(),
            pid,
            key,
        }
    }

    pub fn lookup(&self, pid: i32, key: &[u8]) -> Option<CancelTarget> {
        let key: [u8; 4] = key.try_into().ok()?;
        let entries = self.map.get(&pid)?;
        let mut found = Choice::from(0);
        let mut index = 0u32;
        for (i, (k, _)) in entries.iter().enumerate() {
            let hit = k.ct_eq(&key);
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        bool::from(found).then(|| entries.get(index as usize).map(|e| e.1.clone()))?
    }

    /// Live sessions with a cancel key.
    pub fn len(&self) -> usize {
        self.map.iter().map(|e| e.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(address: &str, pid: i32, key: [u8; 4]) -> CancelTarget {
        CancelTarget {
            address: address.to_string(),
            tls: None,
            pid,
            key,
        }
    }

    #[test]
    fn two_targets_with_the_same_backend_pid_stay_apart() {
        let keys = Arc::new(CancelKeys::default());
        let a = keys.mint(target("10.0.0.1:5432", 4242, [1, 1, 1, 1]));
        let b = keys.mint(target("10.0.0.2:5432", 4242, [2, 2, 2, 2]));
        assert_eq!((a.pid, b.pid), (4242, 4242));
        assert_ne!(a.key, b.key);
        assert_eq!(keys.len(), 2);
        let ta = keys.lookup(4242, &a.key).unwrap();
        let tb = keys.lookup(4242, &b.key).unwrap();
        assert_eq!((ta.address.as_str(), ta.key), ("10.0.0.1:5432", [1; 4]));
        assert_eq!((tb.address.as_str(), tb.key), ("10.0.0.2:5432", [2; 4]));
        // The upstream key is not a client key; a wrong pid or length fails.
        let upstream_key = [1u8, 1, 1, 1];
        if a.key != upstream_key && b.key != upstream_key {
            assert!(keys.lookup(4242, &upstream_key).is_none());
        }
        assert!(keys.lookup(4243, &a.key).is_none());
        assert!(keys.lookup(4242, &a.key[..3]).is_none());
        // Forgetting one session leaves the other routable.
        let b_key = b.key;
        drop(b);
        assert!(keys.lookup(4242, &b_key).is_none());
        assert!(keys.lookup(4242, &a.key).is_some());
        drop(a);
        assert!(keys.is_empty());
    }
}
