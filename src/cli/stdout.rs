//! Writing to the terminal: stdout that ends quietly when its reader goes
//! away (`| head`), and notes on stderr, always escaped.

use std::io::Write;

/// stdout was closed by its reader: not an error, the command just stops.
#[derive(Debug, thiserror::Error)]
#[error("stdout closed")]
pub struct StdoutClosed;

/// Writes `text` and a newline to stdout.
pub fn out(text: &str) -> anyhow::Result<()> {
    out_bytes(format!("{text}\n").as_bytes())
}

/// Writes `bytes` to stdout as they are.
pub fn out_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(bytes).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// A note for the person on stderr; nothing to do if stderr is gone.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{}", crate::text::escape(text));
}
