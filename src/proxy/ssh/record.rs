//! What one relayed channel adds to its session's recording (SPEC
//! "Recording"): a channel with a pty as terminal output (`o`) and resizes
//! (`r`); with `ssh = "full"`, exec channels too, each opened by an `m`
//! marker naming the command, and subsystems as a marker (sftp: one per
//! file operation, see `sftp`). What the engineer types is never recorded.
//!
//! It sees the requests as they are queued for the target and the
//! target's output as it is written to the engineer; it only formats lines
//! and queues them (`Recording::push` never waits).

use super::cmd::Cmd;
use super::sftp::SftpTap;
use crate::recording::cast::{self, Utf8Carry};
use crate::recording::Recording;
use std::sync::Mutex;

/// The line the engineer reads on stderr when a recorded channel starts.
pub const NOTICE: &str = "jitgate: this session is recorded\r\n";

/// A session's recording as its channels use it.
#[derive(Clone)]
pub struct SessionRec {
    pub recording: Recording,
    /// `ssh = "full"`: exec and subsystem channels too.
    pub full: bool,
}

#[derive(Default)]
struct State {
    pty: bool,
    /// Output is recorded (a shell or command with a pty, or any exec in
    /// full mode).
    output: bool,
    carry: Utf8Carry,
    sftp: Option<SftpTap>,
}

/// One channel's part of the recording.
pub struct ChannelRec {
    rec: SessionRec,
    state: Mutex<State>,
}

/// What the channel should do after a request was observed.
pub enum Observed {
    Nothing,
    /// The channel is recorded from now on: tell the engineer.
    Started,
}

impl ChannelRec {
    pub fn new(rec: SessionRec) -> ChannelRec {
        ChannelRec {
            rec,
            state: Mutex::default(),
        }
    }

    fn marker(&self, label: &str) {
        let r = &self.rec.recording;
        r.push(cast::marker(r.elapsed(), label));
    }

    /// A request queued for the target.
    pub fn request(&self, cmd: &Cmd) -> Observed {
        let Ok(mut st) = self.state.lock() else {
            return Observed::Nothing;
        };
        let r = &self.rec.recording;
        match cmd {
            Cmd::Pty(term, cols, rows, ..) => {
                st.pty = true;
                r.header(cast::header(
                    *cols,
                    *rows,
                    Some(&term.chars().take(64).collect::<String>()),
                    None,
                    crate::clock::now_ms(),
                ));
                Observed::Nothing
            }
            Cmd::Window(cols, rows, ..) if st.output => {
                r.push(cast::resize(r.elapsed(), *cols, *rows));
                Observed::Nothing
            }
            Cmd::Shell if st.pty => {
                st.output = true;
                Observed::Started
            }
            Cmd::Exec(c) if st.pty || self.rec.full => {
                st.output = true;
                drop(st);
                self.marker(&format!("exec: {}", String::from_utf8_lossy(c)));
                Observed::Started
            }
            Cmd::Subsystem(name) if self.rec.full => {
                if name == "sftp" {
                    st.sftp = Some(SftpTap::default());
                }
                drop(st);
                self.marker(&format!("subsystem: {name}"));
                Observed::Started
            }
            _ => Observed::Nothing,
        }
    }

    /// Bytes the engineer sent: never recorded, only read for sftp's
    /// file operations.
    pub fn input(&self, data: &[u8]) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(tap) = st.sftp.as_mut() {
            for label in tap.request(data) {
                self.marker(&label);
            }
        }
    }

    /// Output the target sent (stdout or stderr), as written to the engineer.
    pub fn output(&self, data: &[u8]) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(tap) = st.sftp.as_mut() {
            for label in tap.response(data) {
                self.marker(&label);
            }
            return;
        }
        if !st.output {
            return;
        }
        let text = st.carry.feed(data);
        if !text.is_empty() {
            let r = &self.rec.recording;
            r.push(cast::output(r.elapsed(), &text));
        }
    }
}
