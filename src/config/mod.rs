//! Configuration: the TOML model, whole-file validation with locations, and
//! the validated `Config` the daemon runs on.

pub mod events;
mod lenient;
mod locate;
mod model;
mod shared;
mod types;
mod validate;

pub use shared::SharedConfig;
pub use types::*;
pub use validate::check_ssh_public_key;

use std::fmt;
use std::path::Path;

/// One problem in a config file, located for an editor (`file:line:col: message`).
#[derive(Debug, Clone)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{}", render_all(.0))]
    Invalid(Vec<Located>),
}

fn render_all(errors: &[Located]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    lines.join("\n")
}

impl ConfigError {
    pub fn errors(&self) -> Vec<String> {
        match self {
            ConfigError::Read { .. } => vec![self.to_string()],
            ConfigError::Invalid(v) => v.iter().map(|e| e.to_string()).collect(),
        }
    }
}

/// Reads and validates a config file. Relative paths inside it (data_dir, key
/// files) are taken relative to the current directory, as for any daemon
/// started from a service manager with a WorkingDirectory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    let base = std::env::current_dir().unwrap_or_else(|_| ".".into());
    parse(&text, path, &base)
}

pub fn parse(text: &str, source: &Path, base: &Path) -> Result<Config, ConfigError> {
    parse_with(text, source, base, validate::FileChecks::Open)
}

/// Parses and validates without opening the files the text names, so
/// untrusted text (the fuzzer's) never makes the process touch the host.
pub fn parse_offline(text: &str) -> Result<Config, ConfigError> {
    let here = Path::new("fuzz.toml");
    parse_with(
        text,
        here,
        Path::new("/nonexistent"),
        validate::FileChecks::Skip,
    )
}

fn parse_with(
    text: &str,
    source: &Path,
    base: &Path,
    files: validate::FileChecks,
) -> Result<Config, ConfigError> {
    let file = source.display().to_string();
    let loc = locate::Locator::new(text);
    let (raw, structural) = match lenient::read(text) {
        Ok(x) => x,
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = locate::offset_to_line_col(text, offset);
            return Err(ConfigError::Invalid(vec![Located {
                file,
                line,
                column,
                key: String::new(),
                // One error per line: a multi-line parser message is joined so every
                // line of output carries its file:line:col.
                message: e
                    .message()
                    .trim()
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("; "),
            }]));
        }
    };
    let located = |path: &locate::Path, at_key: bool, message: String| {
        let (line, column) = if at_key {
            loc.key_line_col(path)
        } else {
            loc.line_col(path)
        };
        Located {
            file: file.clone(),
            line,
            column,
            key: locate::render(path),
            message,
        }
    };
    let mut errors: Vec<Located> = structural
        .into_iter()
        .map(|s| located(&s.path, s.at_key, s.message))
        .collect();
    // Validation runs on what parsed even after structural errors, so one
    // pass reports everything.
    let config = match validate::build(&raw, source, base, files) {
        Ok(c) => Some(c),
        Err(issues) => {
            errors.extend(
                issues
                    .into_iter()
                    .map(|i| located(&i.path, false, i.message)),
            );
            None
        }
    };
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ => {
            // In file order, as an editor walks them.
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigError::Invalid(errors))
        }
    }
}

/// The keys each section of the file may hold (`""` is the top level), and
/// the sections whose keys are free names; for documentation checks.
pub fn known_keys() -> (
    &'static [(&'static str, &'static [&'static str])],
    &'static [&'static str],
) {
    (model::SECTIONS, model::FREE_FORM)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lenient;
#[cfg(test)]
mod tests_oidc;
