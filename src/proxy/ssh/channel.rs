//! One relayed channel: what the engineer sends goes through a FIFO to a
//! writer task for the target's channel; what the target sends is drained by
//! a reader task into a byte-capped queue and written to the engineer by a
//! writer that waits for the engineer's window.
//!
//! Invariants (each one a bug seen in russh-based bastions):
//! - The connection never awaits the target: it only queues. Awaiting
//!   would stall the engineer's whole connection behind one slow channel and
//!   can deadlock two-way transfers (russh re-opens windows on arrival, so
//!   the only backpressure is blocking a session loop).
//! - Order is kept: data sent before the target's channel is ready waits in
//!   the FIFO (rsync, scp and Ansible send stdin right after `exec`).
//! - Memory is bounded: `UP_CAP` bytes may wait for the target and `DOWN_CAP`
//!   for the engineer; beyond that the sending side is held back.
//! - Per-channel order to the engineer is data → exit-status/exit-signal →
//!   EOF → close, as the target sent them.

use super::cmd::Cmd;
use super::control::SessionInfo;
use super::record::{ChannelRec, Observed, SessionRec, NOTICE};
use bytes::Bytes;
use russh::{client, server, Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;

/// Bytes from the engineer waiting for the target's window.
pub const UP_CAP: usize = 16 << 20;
/// Bytes from the target waiting for the engineer's window.
pub const DOWN_CAP: usize = 16 << 20;
/// How long the farewell repeats TERM to a command without a pty before
/// it sends KILL (see `UpChannel::end`).
const TERM_GRACE: Duration = Duration::from_millis(1000);
/// How long the farewell waits for such a command's end before it closes
/// the channel anyway; under the farewell's own bound (2 s).
const STOP_LIMIT: Duration = Duration::from_millis(1500);

/// Answers to want-reply requests, in the order they were sent upstream.
pub type Replies = Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>;

pub struct UpChannel {
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub replies: Replies,
    /// Held back from the engineer's data once UP_CAP bytes are queued.
    pub up_budget: Arc<Semaphore>,
    /// Cancelled once the writer to the target has ended: everything queued
    /// for it, the farewell's signal and close included, is in the
    /// connection's outgoing queue, so a disconnect sent after this cannot
    /// overtake them (and leave a non-pty command running on the target).
    pub upstream_done: CancellationToken,
    /// Cancelled once the target has reported the end of the channel's
    /// command (exit status or exit signal) or closed the channel.
    pub exited: CancellationToken,
    /// A pty was asked for: closing the channel hangs its session up.
    pub pty: AtomicBool,
    /// A shell or command was asked for (and not refused by the target).
    pub command: AtomicBool,
    /// Cancelled by `end`: the engineer's data still queued for the target
    /// (or being written into its window) is dropped, so the farewell's
    /// signals and close, which no window holds back, go out at once.
    pub ending: CancellationToken,
    /// This channel's part of the session's recording, if it is recorded.
    pub rec: Option<Arc<ChannelRec>>,
    /// Messages for the engineer, in order with the target's (the
    /// recording notice).
    pub down: mpsc::UnboundedSender<ChannelMsg>,
}

impl UpChannel {
    /// Queues a request that wants a reply; the receiver says success.
    pub fn request(&self, cmd: Cmd) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut r) = self.replies.lock() {
            r.push_back(tx);
        }
        self.send(cmd);
        rx
    }

    pub fn send(&self, cmd: Cmd) {
        if let Some(rec) = &self.rec {
            match &cmd {
                Cmd::Data(b) => rec.input(b),
                other => {
                    if let Observed::Started = rec.request(other) {
                        let _ = self.down.send(ChannelMsg::ExtendedData {
                            data: NOTICE.as_bytes().into(),
                            ext: 1,
                        });
                    }
                }
            }
        }
        let _ = self.tx.send(cmd);
    }

    /// Notes what a request about to be queued starts on the target: the
    /// farewell treats a command without a pty differently (see `end`).
    pub fn note(&self, cmd: &Cmd) {
        match cmd {
            Cmd::Pty(..) => self.pty.store(true, Ordering::Release),
            Cmd::Exec(_) | Cmd::Shell => self.command.store(true, Ordering::Release),
            _ => {}
        }
    }

    /// The farewell for the target's side of this channel: what runs there
    /// is told to stop, then the channel is closed. Bounded by STOP_LIMIT.
    ///
    /// A command without a pty survives the channel's close and the
    /// connection's end on OpenSSH: only a signal stops it, and one signal
    /// is not enough. sshd delivers it with `killpg(pid)` to the child it
    /// forked for the exec, and a signal that arrives just after the fork
    /// is lost: before the child's `setsid` the group does not exist
    /// (sshd logs `killpg(...): No such process`), and until the child has
    /// exec'd the shell it still runs sshd's code with sshd's signal
    /// handlers. An exec that reached sshd just before the farewell's
    /// signal (both in one read) lost it that way under load, and its
    /// command outlived the grant
    /// (`tests/ssh/ssh_policy.rs::channels_opened_while_a_revoke_runs_leave_nothing_running`).
    /// So the channel stays open, and the signal is repeated with a short
    /// backoff, until sshd reports the command's end (exit status or
    /// signal): TERM, then KILL after `TERM_GRACE` for a command that
    /// ignores TERM. The engineer's close must not close the target's side
    /// meanwhile (`Channels::close`). A pty session is hung up by the
    /// close (an interactive shell ignores TERM), and sshd signals no
    /// subsystem: those get one TERM and the close at once, as before. A
    /// login whose sessions sshd will not signal (root) costs the wait,
    /// STOP_LIMIT, and its command still survives (docs/ssh.md).
    ///
    /// The first TERM is queued before this returns, behind every request
    /// already queued; the rest runs in a task.
    pub fn end(self: &Arc<Self>) {
        self.ending.cancel();
        self.send(Cmd::Signal(Sig::TERM));
        let c = self.clone();
        tokio::spawn(async move { c.stop_then_close().await });
    }

    async fn stop_then_close(&self) {
        let bare = || self.command.load(Ordering::Acquire) && !self.pty.load(Ordering::Acquire);
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(10);
        while bare() && start.elapsed() < STOP_LIMIT {
            tokio::select! {
                _ = self.exited.cancelled() => break,
                _ = self.upstream_done.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_millis(200));
            if bare() && !self.exited.is_cancelled() {
                let sig = if start.elapsed() < TERM_GRACE {
                    Sig::TERM
                } else {
                    Sig::KILL
                };
                self.send(Cmd::Signal(sig));
            }
        }
        if bare() && !self.exited.is_cancelled() && !self.upstream_done.is_cancelled() {
            tracing::warn!("a command on the target did not report its end after TERM and KILL; closing its channel anyway");
        }
        self.send(Cmd::Close);
    }

    /// Queues the engineer's bytes if the channel's budget allows it now.
    pub fn try_send_bytes(&self, data: &Bytes, cmd: impl FnOnce(Bytes) -> Cmd) -> bool {
        let n = data.len().clamp(1, UP_CAP) as u32;
        match self.up_budget.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                self.send(cmd(data.clone()));
                true
            }
            Err(_) => false,
        }
    }

    /// Queues the engineer's bytes; past UP_CAP queued bytes this waits,
    /// which holds the engineer's connection back (the backpressure).
    pub async fn send_bytes(&self, data: Bytes, cmd: impl FnOnce(Bytes) -> Cmd) {
        let n = data.len().clamp(1, UP_CAP) as u32;
        if let Ok(p) = self.up_budget.acquire_many(n).await {
            p.forget();
        }
        self.send(cmd(data));
    }
}

/// Starts relaying between an accepted engineer channel and a target channel.
pub fn start(
    down: Channel<server::Msg>,
    up: Channel<client::Msg>,
    server: server::Handle,
    info: Arc<SessionInfo>,
    kill: &CancellationToken,
    rec: Option<SessionRec>,
) -> Arc<UpChannel> {
    let rec = rec.map(ChannelRec::new).map(Arc::new);
    let (ur, uw) = up.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let replies: Replies = Default::default();
    let up_budget = Arc::new(Semaphore::new(UP_CAP));
    let budget = up_budget.clone();
    let ending = CancellationToken::new();
    let writer = kill.clone().run_until_cancelled_owned(to_target(
        uw,
        rx,
        up_budget.clone(),
        info.clone(),
        ending.clone(),
    ));
    let upstream_done = CancellationToken::new();
    let exited = CancellationToken::new();
    let done = upstream_done.clone();
    tokio::spawn(async move {
        writer.await;
        done.cancel();
        // Nobody returns budget any more: bytes waiting for it, and the
        // engineer's connection held back behind them, must not wait
        // forever.
        budget.close();
    });
    let (qtx, qrx) = mpsc::unbounded_channel::<ChannelMsg>();
    tokio::spawn(kill.clone().run_until_cancelled_owned(to_engineer(
        ur,
        (down, server),
        replies.clone(),
        (exited.clone(), ending.clone()),
        info,
        kill.clone(),
        (qtx.clone(), qrx, rec.clone()),
    )));
    Arc::new(UpChannel {
        tx,
        replies,
        up_budget,
        upstream_done,
        exited,
        pty: AtomicBool::new(false),
        command: AtomicBool::new(false),
        ending,
        rec,
        down: qtx,
    })
}

/// Writes the engineer's side to the target in order. Data waits for the
/// target's window; once the channel is ending, data still queued is
/// dropped and a write waiting for window is abandoned: a command that
/// never reads its stdin would otherwise hold the farewell's TERM/KILL
/// behind up to `UP_CAP` bytes, and outlive the grant.
async fn to_target(
    w: ChannelWriteHalf<client::Msg>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    budget: Arc<Semaphore>,
    info: Arc<SessionInfo>,
    ending: CancellationToken,
) {
    while let Some(c) = rx.recv().await {
        let dropping = ending.is_cancelled();
        let r = match c {
            Cmd::Data(b) | Cmd::Ext(_, b) if dropping => {
                budget.add_permits(b.len().min(UP_CAP));
                Ok(())
            }
            Cmd::Data(b) => {
                let n = b.len();
                let r = tokio::select! {
                    biased;
                    _ = ending.cancelled() => Ok(()),
                    r = w.data_bytes(b) => {
                        info.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        r
                    }
                };
                budget.add_permits(n.min(UP_CAP));
                r
            }
            Cmd::Ext(e, b) => {
                let n = b.len();
                let r = tokio::select! {
                    biased;
                    _ = ending.cancelled() => Ok(()),
                    r = w.extended_data_bytes(e, b) => r,
                };
                budget.add_permits(n.min(UP_CAP));
                r
            }
            Cmd::Pty(t, c, r, pw, ph, m) => w.request_pty(true, &t, c, r, pw, ph, &m).await,
            Cmd::Env(k, v) => w.set_env(true, k, v).await,
            Cmd::Shell => w.request_shell(true).await,
            Cmd::Exec(c) => w.exec(true, c).await,
            Cmd::Subsystem(n) => w.request_subsystem(true, n).await,
            Cmd::Window(c, r, pw, ph) => w.window_change(c, r, pw, ph).await,
            Cmd::Signal(s) => w.signal(s).await,
            Cmd::Eof => w.eof().await,
            Cmd::Close => {
                let _ = w.close().await;
                return;
            }
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "writing to the target's channel failed");
            return;
        }
    }
}

async fn to_engineer(
    mut ur: ChannelReadHalf,
    // The engineer's channel, and their connection's handle.
    (down, server): (Channel<server::Msg>, server::Handle),
    replies: Replies,
    // The target reported its command's end; the farewell has begun.
    (exited, ending): (CancellationToken, CancellationToken),
    info: Arc<SessionInfo>,
    kill: CancellationToken,
    (qtx, mut qrx, rec): (
        mpsc::UnboundedSender<ChannelMsg>,
        mpsc::UnboundedReceiver<ChannelMsg>,
        Option<Arc<ChannelRec>>,
    ),
) {
    // The reader drains the target's channel promptly so the target's
    // session loop keeps processing window adjusts and replies; it holds
    // back only once DOWN_CAP bytes wait for the engineer. (The recording
    // notice is queued here too, outside the budget: one short line.)
    let budget = Arc::new(Semaphore::new(DOWN_CAP));
    let reader_budget = budget.clone();
    tokio::spawn(kill.run_until_cancelled_owned(async move {
        // Once the engineer's side is gone the target's output is dropped,
        // but the channel is still read to its close.
        let mut forward = true;
        let done = exited.clone();
        let _exited = exited.drop_guard();
        while let Some(m) = ur.wait().await {
            match m {
                ChannelMsg::Success | ChannelMsg::Failure => {
                    let next = replies.lock().ok().and_then(|mut r| r.pop_front());
                    if let Some(tx) = next {
                        let _ = tx.send(matches!(m, ChannelMsg::Success));
                    }
                }
                ChannelMsg::Data { ref data } | ChannelMsg::ExtendedData { ref data, .. } => {
                    if !forward {
                        continue;
                    }
                    let n = data.len().clamp(1, DOWN_CAP) as u32;
                    match reader_budget.clone().acquire_many_owned(n).await {
                        Ok(p) => p.forget(),
                        Err(_) => forward = false,
                    }
                    if forward && qtx.send(m).is_err() {
                        forward = false;
                    }
                }
                other => {
                    if matches!(
                        other,
                        ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }
                    ) {
                        done.cancel();
                    }
                    let close = matches!(other, ChannelMsg::Close);
                    if forward && qtx.send(other).is_err() {
                        forward = false;
                    }
                    if close {
                        return;
                    }
                }
            }
        }
    }));
    let id = down.id();
    let (dr, dw) = down.split();
    // Dropped, not kept: an undrained read half stalls the whole session
    // after russh's channel buffer fills (data is handled in the handler).
    drop(dr);
    // Once the farewell has begun it speaks for this channel: relaying
    // stops at once, and the target's own answer to the farewell's signal
    // (its exit, EOF and close) must not reach the engineer first, or the
    // client closes the channel and exits before the farewell's line
    // arrives (exit status -1, no reason). The farewell closes the channel.
    let relay = async {
        while let Some(m) = qrx.recv().await {
            if !forward_down(m, &dw, &server, id, &budget, &info, rec.as_deref()).await {
                break;
            }
        }
    };
    tokio::select! {
        biased;
        _ = ending.cancelled() => {
            // Nobody returns budget any more: the reader, perhaps waiting
            // for some, must go on draining the target's channel (to its
            // close) so the target's session loop is never held up behind
            // it, or the farewell's signals and closes to the target could
            // not leave.
            budget.close();
            return;
        }
        _ = relay => {}
    }
    let _ = dw.close().await;
}

/// Writes one of the target's messages to the engineer's channel; false
/// when the channel is done (closed, or the engineer is gone).
async fn forward_down(
    m: ChannelMsg,
    dw: &ChannelWriteHalf<server::Msg>,
    server: &server::Handle,
    id: russh::ChannelId,
    budget: &Semaphore,
    info: &SessionInfo,
    rec: Option<&ChannelRec>,
) -> bool {
    match m {
        ChannelMsg::Data { data } => {
            let n = data.len();
            if let Some(r) = &rec {
                r.output(&data);
            }
            if dw.data_bytes(data).await.is_err() {
                return false;
            }
            budget.add_permits(n.clamp(1, DOWN_CAP));
            info.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            info.touch();
        }
        ChannelMsg::ExtendedData { data, ext } => {
            let n = data.len();
            let notice = rec.is_some() && data.as_ref() == NOTICE.as_bytes();
            if let (Some(r), false) = (&rec, notice) {
                r.output(&data);
            }
            if dw.extended_data_bytes(ext, data).await.is_err() {
                return false;
            }
            if !notice {
                budget.add_permits(n.clamp(1, DOWN_CAP));
            }
        }
        ChannelMsg::Eof => {
            let _ = dw.eof().await;
        }
        ChannelMsg::ExitStatus { exit_status } => {
            let _ = dw.exit_status(exit_status).await;
        }
        ChannelMsg::ExitSignal {
            signal_name,
            core_dumped,
            error_message,
            lang_tag,
        } => {
            let _ = server
                .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                .await;
        }
        ChannelMsg::Close => return false,
        _ => {}
    }
    true
}
