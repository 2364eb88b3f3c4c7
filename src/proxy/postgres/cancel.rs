//! Cancel keys: each client gets a proxy-minted (pid, key) in its
//! BackendKeyData, mapped here to the upstream backend's real one, so a
//! client-side cancel reaches the right backend and the upstream key never
//! leaves the proxy. Keys are random, compared in constant time; an unknown
//! key is dropped silently, as PostgreSQL does.

use super::upstream::CancelTarget;
use dashmap::DashMap;
use rand::RngCore;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Default)]
pub struct CancelKeys {
    map: DashMap<i32, ([u8; 4], CancelTarget)>,
}

/// Removes the key when the session ends.
pub struct Minted {
    keys: Arc<CancelKeys>,
    pub pid: i32,
    pub key: [u8; 4],
}

impl Drop for Minted {
    fn drop(&mut self) {
        self.keys.map.remove(&self.pid);
    }
}

impl CancelKeys {
    pub fn mint(self: &Arc<Self>, target: CancelTarget) -> Minted {
        let mut rng = rand::rngs::OsRng;
        loop {
            // A positive pid, as clients expect (the sign bit cleared).
            let pid = (rng.next_u32() & 0x7fff_ffff) as i32;
            if pid == 0 {
                continue;
            }
            let mut key = [0u8; 4];
            rng.fill_bytes(&mut key);
            if let dashmap::mapref::entry::Entry::Vacant(v) = self.map.entry(pid) {
                v.insert((key, target));
                return Minted {
                    keys: self.clone(),
                    pid,
                    key,
                };
            }
        }
    }

    pub fn lookup(&self, pid: i32, key: &[u8]) -> Option<CancelTarget> {
        let e = self.map.get(&pid)?;
        (key.len() == 4 && bool::from(e.0.ct_eq(key))).then(|| e.1.clone())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
