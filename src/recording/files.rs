//! The recordings dir: creating a recording's files with their modes, its
//! metadata beside it, and reading them back for the listing.
//!
//! A session id from a URL names a file here only after `valid_id`: no
//! separator, no dot, so no path outside the dir can be reached.

use super::writer::Sealed;
use serde::{Deserialize, Serialize};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingKind {
    Ssh,
    Postgres,
}

impl RecordingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Ssh => "ssh",
            RecordingKind::Postgres => "postgres",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            RecordingKind::Ssh => "cast",
            RecordingKind::Postgres => "ndjson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            RecordingKind::Ssh => "application/x-asciicast",
            RecordingKind::Postgres => "application/x-ndjson",
        }
    }
}

/// A recording's metadata (`SESSION_ID.json`): written at the start,
/// completed with the seal at the end. One cut by a crash has no digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub user: String,
    pub target: String,
    pub kind: RecordingKind,
    pub grant: String,
    pub policy: String,
    pub instance: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub bytes: Option<u64>,
    pub sha256: Option<String>,
}

/// Session ids as `ids::session_id` makes them: letters, digits, `_`, `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn meta_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

pub fn data_path(dir: &Path, id: &str, kind: RecordingKind) -> PathBuf {
    dir.join(format!("{id}.{}", kind.extension()))
}

/// Makes the dir (0700) if needed.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn write_meta(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{}.json.tmp", meta.id));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, meta_path(dir, &meta.id))
}

/// Creates the recording's file and its metadata; returns the file.
pub fn create(dir: &Path, meta: &Meta) -> std::io::Result<File> {
    if !valid_id(&meta.id) {
        return Err(std::io::Error::other("invalid session id"));
    }
    ensure_dir(dir)?;
    let file = create_new(&data_path(dir, &meta.id, meta.kind))?;
    write_meta(dir, meta)?;
    Ok(file)
}

/// Completes the metadata with the seal.
pub fn finish(dir: &Path, id: &str, ended_at_ms: i64, s: &Sealed) -> std::io::Result<()> {
    let mut meta = read_meta(dir, id).ok_or_else(|| std::io::Error::other("metadata missing"))?;
    meta.ended_at_ms = Some(ended_at_ms);
    meta.bytes = Some(s.bytes);
    meta.sha256 = Some(s.sha256.clone());
    write_meta(dir, &meta)
}

pub fn read_meta(dir: &Path, id: &str) -> Option<Meta> {
    if !valid_id(id) {
        return None;
    }
    let text = std::fs::read(meta_path(dir, id)).ok()?;
    serde_json::from_slice::<Meta>(&text)
        .ok()
        .filter(|m| m.id == id)
}

/// A recording's metadata and data file, if both are there.
pub fn find(dir: &Path, id: &str) -> Option<(Meta, PathBuf)> {
    let meta = read_meta(dir, id)?;
    let path = data_path(dir, id, meta.kind);
    path.is_file().then_some((meta, path))
}

/// Every recording's metadata in the dir, newest first.
pub fn list(dir: &Path) -> Vec<Meta> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Meta> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".json")?;
            read_meta(dir, id)
        })
        .collect();
    out.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(a.id.cmp(&b.id)));
    out
}

/// Deletes a recording's files; the data file's absence is no error.
pub fn delete(dir: &Path, meta: &Meta) -> std::io::Result<()> {
    match std::fs::remove_file(data_path(dir, &meta.id, meta.kind)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::remove_file(meta_path(dir, &meta.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_leave_the_dir_are_refused() {
        assert!(valid_id("ses_abc-DEF123"));
        for bad in ["", "../x", "a/b", "a.b", ".", "..", "a\0b"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
