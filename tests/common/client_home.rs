//! A private home for the one-step clients (`jitgate ssh`, `jitgate psql`,
//! `jitgate request --wait`): its own HOME and XDG_CONFIG_HOME, so keys,
//! certificates and pinned host keys of one test are nobody else's.

use super::daemon::{Daemon, BIN};
use std::path::PathBuf;
use std::process::Command;

pub struct ClientHome {
    pub dir: tempfile::TempDir,
}

impl ClientHome {
    pub fn new() -> ClientHome {
        ClientHome {
            dir: tempfile::Builder::new()
                .prefix("jitgate-home-")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn xdg(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    /// `jitgate ARGS` against `d` with `token`, in this home.
    pub fn cli(&self, d: &Daemon, token: &str, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("JITGATE_URL", d.url())
            .env("JITGATE_TOKEN", token)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.xdg())
            .env_remove("JITGATE_CA");
        c
    }

    /// Where the clients keep `d`'s files.
    pub fn server_dir(&self, d: &Daemon) -> PathBuf {
        self.xdg()
            .join("jitgate")
            .join("servers")
            .join(jitgate::cli::client_dir::slug(&d.url()))
    }
}
