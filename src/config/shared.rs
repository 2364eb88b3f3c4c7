//! The running config, swapped atomically on reload. Readers take a cheap
//! `Arc` snapshot and keep it for one operation, so an operation never sees
//! half of an old and half of a new config.

use super::Config;
use std::sync::{Arc, RwLock};

#[derive(Clone)]
pub struct SharedConfig(Arc<RwLock<Arc<Config>>>);

impl SharedConfig {
    pub fn new(c: Config) -> Self {
        SharedConfig(Arc::new(RwLock::new(Arc::new(c))))
    }

    pub fn get(&self) -> Arc<Config> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn replace(&self, c: Config) -> Arc<Config> {
        let new = Arc::new(c);
        match self.0.write() {
            Ok(mut g) => std::mem::replace(&mut *g, new),
            Err(p) => std::mem::replace(&mut *p.into_inner(), new),
        }
    }
}
