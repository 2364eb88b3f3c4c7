//! Where the one-step clients (`jitgate ssh`, `jitgate psql`) keep what they
//! fetch from a server: `$XDG_CONFIG_HOME/jitgate/servers/SLUG` (or
//! `~/.config/jitgate/...`), one directory per admin URL, so two proxies'
//! keys, certificates and pinned host keys never mix.
//!
//! Invariants: the directories are 0700 and every file 0600, set on each
//! use (a directory made by hand with a wider mode is narrowed); a file is
//! written to a temporary name and renamed, so a reader (ssh, psql) never
//! sees half of one.

use anyhow::{bail, Context};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct ServerDir {
    pub path: PathBuf,
}

impl ServerDir {
    /// The directory for `url` (created, 0700).
    pub fn for_url(url: &str) -> anyhow::Result<ServerDir> {
        let base = config_home()?.join("jitgate");
        let path = base.join("servers").join(slug(url));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        for dir in [base.as_path(), &base.join("servers"), &path] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", dir.display()))?;
        }
        Ok(ServerDir { path })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Replaces `name` with `data`, mode 0600; its path.
    pub fn write_private(&self, name: &str, data: &[u8]) -> anyhow::Result<PathBuf> {
        let dest = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(data)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("writing {}", dest.display()))?;
        Ok(dest)
    }
}

/// `$XDG_CONFIG_HOME` when set to an absolute path (the XDG rule: a
/// relative one is ignored), else `$HOME/.config`.
pub fn config_home() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
        let p = PathBuf::from(x);
        if p.is_absolute() {
            return Ok(p);
        }
    }
    match std::env::var_os("HOME") {
        Some(h) if Path::new(&h).is_absolute() => Ok(PathBuf::from(h).join(".config")),
        _ => bail!("neither XDG_CONFIG_HOME nor HOME is set to an absolute path; set one"),
    }
}

/// A directory name for `url`: its host and port made file-name safe, and
/// a digest of the whole URL, so URLs differing only in scheme or path (or
/// in characters replaced here) do not share a directory.
pub fn slug(url: &str) -> String {
    let url = url.trim_end_matches('/');
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let readable: String = rest
        .chars()
        .take(64)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    let digest = hex::encode(crate::secrets::sha256(url.as_bytes()));
    format!("{readable}-{}", &digest[..12])
}
