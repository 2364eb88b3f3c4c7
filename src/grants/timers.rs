//! One timer task per active grant (warnings, then the end instant) and per
//! pending request (its expiry). Timers sleep until the exact instant; nothing
//! polls. Replacing or cancelling a timer aborts the old task.

use dashmap::DashMap;
use tokio::task::AbortHandle;

#[derive(Default)]
pub struct Timers {
    tasks: DashMap<String, AbortHandle>,
}

impl Timers {
    pub fn set(&self, key: &str, handle: AbortHandle) {
        if let Some(old) = self.tasks.insert(key.to_string(), handle) {
            old.abort();
        }
    }

    pub fn cancel(&self, key: &str) {
        if let Some((_, h)) = self.tasks.remove(key) {
            h.abort();
        }
    }

    /// Called by a timer task as it finishes, so the map only holds live timers.
    pub fn done(&self, key: &str) {
        self.tasks.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.tasks.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }
}
