//! Frames one direction of a PostgreSQL connection for the statement log:
//! keeps the bodies of the few messages read there and skips the rest, so a
//! 512 MiB frame costs nothing.
//!
//! A statement text (Query, or Parse after its name) longer than
//! `HEAD_CAP + TAIL_CAP` bytes is kept as its first `HEAD_CAP` bytes and its
//! last `TAIL_CAP` bytes, with the number left out between them and the
//! SHA-256 of the whole text: a long padding comment cannot hide what
//! follows it (a trailing `DROP`), and the digest ties the line to the exact
//! text that ran.

use sha2::{Digest, Sha256};
use std::collections::VecDeque;

/// The first bytes of a body kept (for a statement: of its text's start).
pub(super) const HEAD_CAP: usize = 32 << 10;
/// The last bytes of a long statement text kept.
pub(super) const TAIL_CAP: usize = 32 << 10;

/// What was left out of a body longer than `HEAD_CAP`.
#[derive(Debug, Default)]
pub(super) struct Cut {
    /// The last bytes of the statement text (none for other messages).
    pub tail: Vec<u8>,
    /// Bytes of the statement text between the head and the tail, not kept.
    pub elided: u64,
    /// SHA-256 of the whole statement text (when it could be found).
    pub sha256: Option<[u8; 32]>,
}

/// The statement text of a long Query or Parse, followed as it streams.
struct LongText {
    hash: Sha256,
    tail: VecDeque<u8>,
    elided: u64,
    /// Its terminating NUL was seen: what follows is not text.
    done: bool,
}

#[derive(Default)]
pub(super) struct Framer {
    header: [u8; 5],
    have: usize,
    remaining: u64,
    keep: bool,
    body: Vec<u8>,
    /// Bytes past the head (other than a followed statement text's).
    truncated: bool,
    long: Option<LongText>,
}

/// Where the statement text starts in a body of `tag`: a Query's at 0, a
/// Parse's after its statement name; None for other messages.
pub(super) fn text_start(tag: u8, body: &[u8]) -> Option<usize> {
    match tag {
        b'Q' => Some(0),
        b'P' => body.iter().position(|&c| c == 0).map(|i| i + 1),
        _ => None,
    }
}

impl LongText {
    /// Text bytes past the head: hashed whole, the last `TAIL_CAP` kept.
    fn feed(&mut self, data: &[u8]) {
        if self.done {
            return;
        }
        let text = match data.iter().position(|&c| c == 0) {
            Some(i) => {
                self.done = true;
                &data[..i]
            }
            None => data,
        };
        self.hash.update(text);
        self.tail.extend(text);
        let over = self.tail.len().saturating_sub(TAIL_CAP);
        self.tail.drain(..over);
        self.elided += over as u64;
    }
}

impl Framer {
    /// Feeds relayed bytes; calls `on` with each complete message of a tag
    /// in `wanted`: its body (its first `HEAD_CAP` bytes) and, when longer,
    /// what was cut.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        wanted: &[u8],
        mut on: impl FnMut(u8, &[u8], Option<Cut>),
    ) {
        while !data.is_empty() {
            if self.have < 5 {
                let take = (5 - self.have).min(data.len());
                self.header[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                data = &data[take..];
                if self.have < 5 {
                    return;
                }
                let len = i32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.remaining = (len.max(4) - 4) as u64;
                self.keep = wanted.contains(&self.header[0]);
                self.body.clear();
                self.truncated = false;
                self.long = None;
            }
            let take = (self.remaining.min(data.len() as u64)) as usize;
            if self.keep {
                let room = HEAD_CAP.saturating_sub(self.body.len()).min(take);
                self.body.extend_from_slice(&data[..room]);
                if room < take {
                    self.past_head(&data[room..take]);
                }
            }
            self.remaining -= take as u64;
            data = &data[take..];
            if self.remaining == 0 {
                if self.keep {
                    let cut = self.cut();
                    on(self.header[0], &self.body, cut);
                }
                self.have = 0;
            }
        }
    }

    /// Bytes beyond the head: a statement text still going on is followed
    /// (hashed, its tail kept); anything else is only marked cut.
    fn past_head(&mut self, data: &[u8]) {
        if self.long.is_none() && !self.truncated {
            let text = text_start(self.header[0], &self.body)
                .and_then(|s| self.body.get(s..))
                .filter(|t| !t.contains(&0));
            match text {
                Some(t) => {
                    let mut hash = Sha256::new();
                    hash.update(t);
                    self.long = Some(LongText {
                        hash,
                        tail: VecDeque::new(),
                        elided: 0,
                        done: false,
                    });
                }
                // The text ended in the head (or there is none): what
                // follows is not statement text.
                None => self.truncated = true,
            }
        }
        if let Some(l) = self.long.as_mut() {
            l.feed(data);
        }
    }

    fn cut(&mut self) -> Option<Cut> {
        if let Some(l) = self.long.take() {
            return Some(Cut {
                tail: l.tail.into(),
                elided: l.elided,
                sha256: Some(l.hash.finalize().into()),
            });
        }
        self.truncated.then(Cut::default)
    }
}
