//! What the engineer's side asks of a target channel, in the order it was
//! asked: the channel relay carries these to the target, and the recorder
//! reads the requests (pty size, command) to describe the session. Its own
//! module so the recorder does not depend on the relay.

use bytes::Bytes;
use russh::{Pty, Sig};

pub enum Cmd {
    Data(Bytes),
    Ext(u32, Bytes),
    Pty(String, u32, u32, u32, u32, Vec<(Pty, u32)>),
    Env(String, String),
    Shell,
    Exec(Vec<u8>),
    Subsystem(String),
    Window(u32, u32, u32, u32),
    Signal(Sig),
    Eof,
    Close,
}
