//! The upstream server every route ends at, run by the coordinator.

use crate::stats::now_us;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the sources send: zeros, so no generator shows up in the figures.
pub static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

/// The upstream server, with one listener per route so the routes do not
/// share ephemeral ports. The first byte of a connection picks the mode:
/// `E idx:u32` echo, recording when the peer closed; `U n:u64` sink of n
/// bytes, answering n; `D n:u64` source of n bytes, then close.
pub struct Upstream {
    pub jitgate: u16,
    pub haproxy: u16,
    pub direct: u16,
    pub closes: Arc<Mutex<HashMap<u32, i64>>>,
}

impl Upstream {
    pub async fn start() -> anyhow::Result<Upstream> {
        let closes = Arc::new(Mutex::new(HashMap::new()));
        let mut ports = [0u16; 3];
        for p in &mut ports {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            *p = l.local_addr()?.port();
            tokio::spawn(upstream_accept(l, closes.clone()));
        }
        Ok(Upstream {
            jitgate: ports[0],
            haproxy: ports[1],
            direct: ports[2],
            closes,
        })
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.closes.lock() {
            m.clear();
        }
    }

    pub fn snapshot(&self) -> HashMap<u32, i64> {
        self.closes.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Blocks until the upstream end of session `idx` closed.
    pub fn wait_for(&self, idx: u32, limit: Duration) -> Option<i64> {
        let until = Instant::now() + limit;
        loop {
            if let Some(t) = self.closes.lock().ok().and_then(|m| m.get(&idx).copied()) {
                return Some(t);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Blocks until `n` upstream ends closed (or the limit passes).
    pub fn wait_count(&self, n: usize, limit: Duration) -> HashMap<u32, i64> {
        let until = Instant::now() + limit;
        loop {
            let m = self.snapshot();
            if m.len() >= n || Instant::now() > until {
                return m;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

pub async fn upstream_accept(l: TcpListener, closes: Arc<Mutex<HashMap<u32, i64>>>) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                let _ = s.set_nodelay(true);
                tokio::spawn(upstream_conn(s, closes.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

pub async fn upstream_conn(mut s: TcpStream, closes: Arc<Mutex<HashMap<u32, i64>>>) {
    let Ok(mode) = s.read_u8().await else { return };
    match mode {
        b'E' => {
            let Ok(idx) = s.read_u32().await else { return };
            let mut buf = [0u8; 512];
            loop {
                let done = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => true,
                    Ok(n) => s.write_all(&buf[..n]).await.is_err(),
                };
                if done {
                    let t = now_us();
                    if idx != u32::MAX {
                        if let Ok(mut m) = closes.lock() {
                            m.insert(idx, t);
                        }
                    }
                    return;
                }
            }
        }
        b'U' => {
            let Ok(want) = s.read_u64().await else { return };
            let mut buf = vec![0u8; 256 * 1024];
            let mut got = 0u64;
            while got < want {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n as u64,
                }
            }
            let _ = s.write_u64(got).await;
            let _ = s.shutdown().await;
        }
        b'D' => {
            let Ok(mut left) = s.read_u64().await else {
                return;
            };
            while left > 0 {
                let k = left.min(ZEROS.len() as u64) as usize;
                if s.write_all(&ZEROS[..k]).await.is_err() {
                    return;
                }
                left -= k as u64;
            }
            let _ = s.shutdown().await;
        }
        _ => {}
    }
}
