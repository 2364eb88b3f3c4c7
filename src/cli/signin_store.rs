//! The sign-ins `jitgate login` saves: one entry per admin URL in
//! `signin.json` under the user's config directory
//! (`$XDG_CONFIG_HOME/jitgate`, else `~/.config/jitgate`). The directory is
//! 0700 and the file 0600, written whole to a temporary file and renamed,
//! so a reader never sees half a file and no other user can read a token.
//! Other client files (an SSH key pair and certificate) live beside it in
//! [`config_dir`].

use anyhow::{anyhow, Context};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

const FILE: &str = "signin.json";
/// A saved file larger than this is not ours.
const MAX_FILE: u64 = 1024 * 1024;

/// One saved sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SavedSignin {
    /// The admin API URL, without a trailing slash.
    pub url: String,
    pub token: String,
    pub user: String,
    /// RFC 3339, as the server said.
    pub expires_at: String,
    /// Unix milliseconds; the most recent sign-in is used when no URL is given.
    pub saved_at_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedFile {
    signins: Vec<SavedSignin>,
}

/// The directory for jitgate's client files: `$XDG_CONFIG_HOME/jitgate`
/// or `~/.config/jitgate`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("jitgate"))
}

/// Creates [`config_dir`] (0700) if needed and returns it.
pub fn ensure_config_dir() -> anyhow::Result<PathBuf> {
    let dir = config_dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    Ok(dir)
}

fn normalise(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn read() -> anyhow::Result<SavedFile> {
    let path = config_dir()?.join(FILE);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedFile::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if meta.len() > MAX_FILE {
        return Err(anyhow!(
            "{} is too large to be a sign-in file",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a sign-in file", path.display()))
}

fn write(file: &SavedFile) -> anyhow::Result<()> {
    let dir = ensure_config_dir()?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!(".{FILE}.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(file)?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The saved sign-in for `url`, if any.
pub fn load(url: &str) -> anyhow::Result<Option<SavedSignin>> {
    let url = normalise(url);
    Ok(read()?.signins.into_iter().find(|s| s.url == url))
}

/// The most recently saved sign-in, whatever its URL.
pub fn latest() -> anyhow::Result<Option<SavedSignin>> {
    Ok(read()?.signins.into_iter().max_by_key(|s| s.saved_at_ms))
}

/// Saves `s`, replacing any earlier sign-in for its URL.
pub fn save(s: &SavedSignin) -> anyhow::Result<()> {
    let mut file = read()?;
    let mut s = s.clone();
    s.url = normalise(&s.url);
    file.signins.retain(|x| x.url != s.url);
    file.signins.push(s);
    write(&file)
}

/// Forgets the sign-in for `url`; false when there was none.
pub fn remove(url: &str) -> anyhow::Result<bool> {
    let url = normalise(url);
    let mut file = read()?;
    let before = file.signins.len();
    file.signins.retain(|x| x.url != url);
    if file.signins.len() == before {
        return Ok(false);
    }
    write(&file)?;
    Ok(true)
}
