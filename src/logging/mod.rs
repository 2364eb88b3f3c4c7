//! tracing setup: human or JSON lines on stderr, filtered by RUST_LOG
//! (default info). Secrets never reach a log call: tokens and connect secrets
//! are hashed before anything else sees them. Both formats escape what came
//! from input: JSON by its encoding, the human format in [`text`].

mod json;
mod text;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The daemon's `--log-format`; defined here so logging needs nothing from
/// the CLI.
#[derive(Clone, Copy, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines (user text escaped).
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = match format {
        LogFormat::Human => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            human_subscriber(filter, std::io::stderr, ansi)
                .try_init()
                .is_ok()
        }
        LogFormat::Json => json_subscriber(filter, std::io::stderr).try_init().is_ok(),
    };
}

/// The JSON format: one object per line, span fields folded in.
fn json_subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter)
        .with(json::SpanFields)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(json::JsonLines)
                .with_writer(writer),
        )
}

/// The human format: stock layout (time, level, spans, fields) with every
/// field value and the message escaped.
fn human_subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl tracing::Subscriber
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi)
        .fmt_fields(text::EscapedFields)
        .finish()
}

/// What a subscriber built by `make` over an in-memory writer prints for
/// the events `f` logs; for the formats' tests.
#[cfg(test)]
fn captured<S: tracing::Subscriber + Send + Sync + 'static>(
    make: impl FnOnce(Capture) -> S,
    f: impl FnOnce(),
) -> String {
    let buf = Capture::default();
    tracing::subscriber::with_default(make(buf.clone()), f);
    let bytes = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::ErrorKind::Other)?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}
