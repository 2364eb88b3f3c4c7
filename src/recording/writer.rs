//! One session's recording: a handle the relay pushes complete lines into
//! (never awaiting), and a writer task that owns the file.
//!
//! Invariants:
//! - The relay never waits: `push` is a `try_send` on a queue bounded in
//!   bytes (`QUEUE_BYTES`) and in lines (`QUEUE`); a full queue is a
//!   failure handled by `on_failure` (see `Recordings`).
//! - Lines reach the disk at least every `FLUSH_EVERY`: a crash leaves the
//!   file readable up to its last flush (every line is written whole).
//! - The digest and size are of exactly the bytes written, in order; the
//!   seal is taken after the last write, a flush and an fsync.
//! - Live watchers get each line after it is written; a watcher whose
//!   queue is full is dropped, so a slow watcher never slows the writer.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Lines waiting for the writer, at most. The bound that matters is
/// `QUEUE_BYTES`: a terminal's output arrives in reads of a few hundred
/// bytes, so a queue of 256 lines held only ~100 KiB and a burst of output
/// (`cat` of a large file) filled it while the writer waited on one flush,
/// ending the session under `refuse`. Slots are allocated as used.
pub const QUEUE: usize = 16384;
/// Bytes waiting for the writer, at most: what a session may buffer while
/// its writer waits on the disk (about half a second of a terminal at full
/// speed); beyond it the disk, or the CPU, is not keeping up.
pub const QUEUE_BYTES: usize = 8 << 20;
/// How often written lines are flushed to the file at the latest.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Lines a live watcher may be behind before it is dropped.
pub const WATCHER_QUEUE: usize = 1024;
/// Bytes buffered in memory before a flush is forced.
const BUFFER: usize = 64 << 10;

/// What a sealed recording was: the digest and size of its bytes.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub sha256: String,
    pub bytes: u64,
}

/// Why a recording could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteFailure {
    #[error("the recording queue is full (the disk is not keeping up)")]
    QueueFull,
    #[error("writing the recording failed: {0}")]
    Io(String),
    /// Too many statements in flight to follow (see `statements`).
    #[error("{not_recorded} statements were not recorded (too many in flight)")]
    Unrecorded { not_recorded: u64 },
}

pub(super) enum Item {
    /// A line with its newline; `header` lines are written only as the
    /// first line (a later one is dropped).
    Line {
        bytes: Bytes,
        header: bool,
    },
    /// A live watcher: answered with the bytes written so far (the file's
    /// prefix it must read first), then fed every later line.
    Watch(mpsc::Sender<Bytes>, oneshot::Sender<u64>),
    Seal(oneshot::Sender<Option<Sealed>>),
}

/// Reports a failure, once per recording, to whoever applies `on_failure`.
pub(super) type OnFail = Arc<dyn Fn(WriteFailure) + Send + Sync>;

/// The relay's side of one recording: cheap to clone.
#[derive(Clone)]
pub struct Recording {
    pub(super) tx: mpsc::Sender<Item>,
    pub(super) start: Instant,
    pub(super) failed: Arc<AtomicBool>,
    pub(super) on_fail: OnFail,
    /// Bytes of lines queued and not yet taken by the writer.
    pub(super) queued: Arc<AtomicUsize>,
}

/// A recording as the live map holds it: without keeping it open.
pub(super) struct WeakRecording {
    tx: mpsc::WeakSender<Item>,
    start: Instant,
    failed: Arc<AtomicBool>,
    on_fail: OnFail,
    queued: Arc<AtomicUsize>,
}

impl WeakRecording {
    pub fn upgrade(&self) -> Option<Recording> {
        Some(Recording {
            tx: self.tx.upgrade()?,
            start: self.start,
            failed: self.failed.clone(),
            on_fail: self.on_fail.clone(),
            queued: self.queued.clone(),
        })
    }
}

impl Recording {
    pub(super) fn downgrade(&self) -> WeakRecording {
        WeakRecording {
            tx: self.tx.downgrade(),
            start: self.start,
            failed: self.failed.clone(),
            on_fail: self.on_fail.clone(),
            queued: self.queued.clone(),
        }
    }

    /// Seconds since the recording started, for asciicast event times.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Queues one line (ending with a newline); never waits.
    pub fn push(&self, line: Vec<u8>) {
        self.send(Item::Line {
            bytes: Bytes::from(line),
            header: false,
        });
    }

    /// Queues the header: written if nothing has been written yet.
    pub fn header(&self, line: Vec<u8>) {
        self.send(Item::Line {
            bytes: Bytes::from(line),
            header: true,
        });
    }

    fn send(&self, item: Item) {
        if self.failed.load(Ordering::Acquire) {
            return;
        }
        let n = match &item {
            Item::Line { bytes, .. } => bytes.len(),
            _ => 0,
        };
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > QUEUE_BYTES {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.fail(WriteFailure::QueueFull);
            return;
        }
        match self.tx.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                self.fail(WriteFailure::QueueFull);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued.fetch_sub(n, Ordering::AcqRel);
            }
        }
    }

    /// Reports a failure, once: nothing more is queued after it.
    pub(super) fn fail(&self, why: WriteFailure) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            (self.on_fail)(why);
        }
    }

    /// Whether a failure was reported (nothing more is written after one).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Closes the recording: everything queued is written, flushed and
    /// fsynced; returns its digest and size (None if the writer is gone).
    /// Bounded: a disk that does not answer within `limit` gives None.
    pub async fn seal(&self, limit: Duration) -> Option<Sealed> {
        let (tx, rx) = oneshot::channel();
        let sent = tokio::time::timeout(limit, self.tx.send(Item::Seal(tx))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return None;
        }
        tokio::time::timeout(limit, rx).await.ok()?.ok()?
    }

    /// A live watcher: the number of bytes already in the file (to be read
    /// from it first), and a queue of every line written after them.
    pub async fn watch(&self) -> Option<(u64, mpsc::Receiver<Bytes>)> {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let (otx, orx) = oneshot::channel();
        self.tx.send(Item::Watch(tx, otx)).await.ok()?;
        let offset = orx.await.ok()?;
        Some((offset, rx))
    }
}

/// The writer's state: the file, what is buffered, the running digest.
pub(super) struct Writer {
    pub file: Option<std::fs::File>,
    pub buf: Vec<u8>,
    pub hash: Sha256,
    pub written: u64,
    pub header_done: bool,
    /// The first line when no header was pushed before other lines.
    pub default_header: Vec<u8>,
    pub watchers: Vec<mpsc::Sender<Bytes>>,
    /// Counts bytes written, by kind.
    pub counter: prometheus::IntCounter,
    /// Lines written besides the header.
    pub events: u64,
    /// The recording's files, removed if every handle is dropped unsealed
    /// with nothing but a header written: its session never started.
    pub files: Vec<std::path::PathBuf>,
}

impl Writer {
    fn append(&mut self, line: &Bytes) {
        self.buf.extend_from_slice(line);
        self.hash.update(line);
        self.written += line.len() as u64;
        self.counter.inc_by(line.len() as u64);
        self.watchers.retain(|w| w.try_send(line.clone()).is_ok());
    }

    /// Writes the buffer out, on a blocking thread.
    async fn flush(&mut self, sync: bool) -> Result<(), WriteFailure> {
        let Some(mut file) = self.file.take() else {
            return Err(WriteFailure::Io("the file is closed".into()));
        };
        let buf = std::mem::take(&mut self.buf);
        let (file, buf, r) = tokio::task::spawn_blocking(move || {
            let r = file
                .write_all(&buf)
                .and_then(|_| if sync { file.sync_all() } else { Ok(()) });
            (file, buf, r)
        })
        .await
        .map_err(|e| WriteFailure::Io(e.to_string()))?;
        self.file = Some(file);
        self.buf = buf;
        self.buf.clear();
        r.map_err(|e| WriteFailure::Io(e.to_string()))
    }

    /// Runs until sealed or every handle is gone. A write error is reported
    /// once; from then on lines are dropped (the file holds what was
    /// written before) and the seal reports the bytes that reached it.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Item>,
        on_fail: OnFail,
        failed: Arc<AtomicBool>,
        queued: Arc<AtomicUsize>,
    ) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut broken = false;
        let mut fail = |why: WriteFailure, broken: &mut bool| {
            *broken = true;
            if !failed.swap(true, Ordering::AcqRel) {
                on_fail(why);
            }
        };
        loop {
            let item = tokio::select! {
                item = rx.recv() => item,
                _ = tick.tick() => {
                    if !broken && !self.buf.is_empty() {
                        if let Err(e) = self.flush(false).await {
                            fail(e, &mut broken);
                        }
                    }
                    continue;
                }
            };
            match item {
                Some(Item::Line { bytes, header }) => {
                    queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                    if broken {
                        continue;
                    }
                    self.events += u64::from(!header);
                    if !self.header_done {
                        self.header_done = true;
                        if !header {
                            let h = Bytes::from(std::mem::take(&mut self.default_header));
                            self.append(&h);
                        }
                    } else if header {
                        continue;
                    }
                    self.append(&bytes);
                    if self.buf.len() >= BUFFER {
                        if let Err(e) = self.flush(false).await {
                            fail(e, &mut broken);
                        }
                    }
                }
                Some(Item::Watch(tx, offset)) => {
                    if !broken && !self.buf.is_empty() {
                        if let Err(e) = self.flush(false).await {
                            fail(e, &mut broken);
                        }
                    }
                    if offset.send(self.written - self.buf.len() as u64).is_ok() {
                        self.watchers.push(tx);
                    }
                }
                Some(Item::Seal(reply)) => {
                    let sealed = self.seal(&mut broken, &mut fail).await;
                    let _ = reply.send(sealed);
                    return;
                }
                None => {
                    let _ = self.seal(&mut broken, &mut fail).await;
                    if self.events == 0 {
                        for f in &self.files {
                            let _ = std::fs::remove_file(f);
                        }
                    }
                    return;
                }
            }
        }
    }

    async fn seal(
        &mut self,
        broken: &mut bool,
        fail: &mut impl FnMut(WriteFailure, &mut bool),
    ) -> Option<Sealed> {
        if !*broken && !self.header_done {
            self.header_done = true;
            let h = Bytes::from(std::mem::take(&mut self.default_header));
            self.append(&h);
        }
        if !*broken {
            if let Err(e) = self.flush(true).await {
                fail(e, broken);
            }
        }
        // An empty line tells each watcher the recording is complete (one
        // too far behind to take it ends as dropped).
        for w in self.watchers.drain(..) {
            let _ = w.try_send(Bytes::new());
        }
        let digest = std::mem::take(&mut self.hash).finalize();
        // A broken recording's digest would not match the file (what was
        // buffered at the failure never reached it): report none.
        (!*broken).then(|| Sealed {
            sha256: hex::encode(digest),
            bytes: self.written,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(dir: &std::path::Path) -> (Recording, std::path::PathBuf) {
        let path = dir.join("r.cast");
        let file = std::fs::File::create(&path).unwrap();
        let w = Writer {
            file: Some(file),
            buf: Vec::new(),
            hash: Sha256::new(),
            written: 0,
            header_done: false,
            default_header: b"{\"version\":2}\n".to_vec(),
            watchers: Vec::new(),
            counter: prometheus::IntCounter::new("t", "t").unwrap(),
            events: 0,
            files: Vec::new(),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let on_fail: OnFail = Arc::new(|_| {});
        tokio::spawn(w.run(rx, on_fail.clone(), failed.clone(), queued.clone()));
        let rec = Recording {
            tx,
            start: Instant::now(),
            failed,
            on_fail,
            queued,
        };
        (rec, path)
    }

    /// A watcher that reads nothing is dropped once its queue is full; the
    /// writer goes on, and the seal covers every line.
    #[tokio::test]
    async fn a_stalled_watcher_is_dropped_and_never_holds_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, path) = start(dir.path());
        let (offset, mut stalled) = rec.watch().await.unwrap();
        assert_eq!(offset, 0);
        let lines = WATCHER_QUEUE * 3;
        for i in 0..lines {
            // Paced under the writer's queue: only the watcher may fall behind.
            while rec.tx.capacity() < 8 {
                tokio::task::yield_now().await;
            }
            rec.push(format!("[0, \"o\", \"{i}\"]\n").into_bytes());
        }
        // A second watch goes through the same queue: once it is answered,
        // every line above has been handled.
        let _ = rec.watch().await.unwrap();
        let mut got = 0;
        // Dropped, not just lossy: after what its queue held, the stream
        // ends while the recording is still open.
        let wait = Duration::from_secs(5);
        while let Ok(Some(_)) = tokio::time::timeout(wait, stalled.recv()).await {
            got += 1;
        }
        let closed = tokio::time::timeout(wait, stalled.recv()).await;
        assert!(matches!(closed, Ok(None)), "closed before the seal");
        assert_eq!(
            got, WATCHER_QUEUE,
            "it got what its queue held, then was dropped"
        );
        let sealed = rec.seal(Duration::from_secs(10)).await.unwrap();
        assert!(!rec.failed());
        let text = std::fs::read(&path).unwrap();
        assert_eq!(sealed.bytes, text.len() as u64);
        assert_eq!(sealed.sha256, hex::encode(Sha256::digest(&text)));
        assert_eq!(String::from_utf8_lossy(&text).lines().count(), lines + 1);
    }

    /// A terminal's burst of output arrives as many small reads while the
    /// writer is busy (here: never scheduled, the test's one thread pushes
    /// them all first). 4,000 lines of a read each are far under the byte
    /// bound and must not fail the recording (a 256-line queue did, and
    /// `refuse` then ended the session).
    #[tokio::test]
    async fn a_burst_of_small_reads_fits_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, path) = start(dir.path());
        let lines = 4000;
        for i in 0..lines {
            rec.push(format!("[0.1, \"o\", \"line {i} of a build log\\r\\n\"]\n").into_bytes());
        }
        assert!(!rec.failed(), "a burst of small lines failed the recording");
        let sealed = rec.seal(Duration::from_secs(10)).await.unwrap();
        let text = std::fs::read(&path).unwrap();
        assert_eq!(sealed.bytes, text.len() as u64);
        assert_eq!(String::from_utf8_lossy(&text).lines().count(), lines + 1);
    }

    /// Beyond `QUEUE_BYTES` waiting for the writer, the recording fails
    /// (the relay never waits; `on_failure` decides).
    #[tokio::test]
    async fn more_than_the_byte_bound_fails_the_recording() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _path) = start(dir.path());
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..(QUEUE_BYTES / chunk.len()) {
            rec.push(chunk.clone());
        }
        assert!(!rec.failed(), "exactly the bound fits");
        rec.push(chunk);
        assert!(rec.failed(), "one line more than the bound fails");
    }

    /// A watcher keeping up gets the header and every line, then the end.
    #[tokio::test]
    async fn a_watcher_gets_every_line_then_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, _path) = start(dir.path());
        let (_, mut w) = rec.watch().await.unwrap();
        rec.push(b"[0, \"o\", \"a\"]\n".to_vec());
        rec.push(b"[0, \"o\", \"b\"]\n".to_vec());
        rec.seal(Duration::from_secs(10)).await.unwrap();
        let mut got = Vec::new();
        while let Some(l) = w.recv().await {
            got.push(l);
        }
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[3].is_empty(), "the end");
    }
}
