//! Measurements 2 (relay throughput) and 4 (connection setup rate).

use crate::net::{echo_tagged, open, Route};
use crate::upstream::ZEROS;
use crate::{SETUP_CLIENTS, SETUP_SECONDS, TRANSFER_BYTES};
use anyhow::ensure;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug)]
pub enum Dir {
    Upload,
    Download,
}

/// The throughput cases: direction and number of parallel streams.
pub const CASES: [(Dir, usize); 4] = [
    (Dir::Upload, 1),
    (Dir::Upload, 8),
    (Dir::Download, 1),
    (Dir::Download, 8),
];

/// MB/s (10^6 bytes) of `TRANSFER_BYTES` split over `streams` connections,
/// timed from the first byte to the last one acknowledged (upload: the sink
/// reports the count; download: EOF after the last byte).
pub async fn transfer(route: &Route, dir: Dir, streams: usize) -> anyhow::Result<f64> {
    transfer_bytes(route, dir, streams, TRANSFER_BYTES).await
}

/// [`transfer`] of `total` bytes.
pub async fn transfer_bytes(
    route: &Route,
    dir: Dir,
    streams: usize,
    total: u64,
) -> anyhow::Result<f64> {
    let per = total / streams as u64;
    let mut conns = Vec::with_capacity(streams);
    for _ in 0..streams {
        conns.push(open(route).await?);
    }
    let start = Instant::now();
    let mut set = JoinSet::new();
    for mut c in conns {
        set.spawn(async move {
            match dir {
                Dir::Upload => {
                    c.write_u8(b'U').await?;
                    c.write_u64(per).await?;
                    let mut left = per;
                    while left > 0 {
                        let k = left.min(ZEROS.len() as u64) as usize;
                        c.write_all(&ZEROS[..k]).await?;
                        left -= k as u64;
                    }
                    c.flush().await?;
                    let got = c.read_u64().await?;
                    ensure!(got == per, "sink got {got} of {per} bytes");
                }
                Dir::Download => {
                    c.write_u8(b'D').await?;
                    c.write_u64(per).await?;
                    c.flush().await?;
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut got = 0u64;
                    while got < per {
                        match c.read(&mut buf).await? {
                            0 => break,
                            n => got += n as u64,
                        }
                    }
                    ensure!(got == per, "got {got} of {per} bytes");
                }
            }
            let _ = c.shutdown().await;
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Connections per second, each one connect, handshake (and tunnel OK),
/// 1-byte echo and close, `SETUP_CLIENTS` at a time for `SETUP_SECONDS`;
/// also the connections made and failed.
pub async fn setup_rate(route: &Route) -> (f64, usize, usize) {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(SETUP_SECONDS);
    let mut set = JoinSet::new();
    for _ in 0..SETUP_CLIENTS {
        let (route, ok, failed) = (route.clone(), ok.clone(), failed.clone());
        set.spawn(async move {
            while Instant::now() < until {
                let one = async {
                    let mut c = open(&route).await?;
                    echo_tagged(&mut c, u32::MAX).await?;
                    c.shutdown().await?;
                    Ok::<_, anyhow::Error>(())
                };
                match tokio::time::timeout(Duration::from_secs(10), one).await {
                    Ok(Ok(())) => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while set.join_next().await.is_some() {}
    let n = ok.load(Ordering::Relaxed);
    (
        n as f64 / start.elapsed().as_secs_f64(),
        n,
        failed.load(Ordering::Relaxed),
    )
}
