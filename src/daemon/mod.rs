//! `jitgate serve`: wire the store, control plane, listeners and signals
//! together, and shut down in order.
//!
//! The order is the point: the store is locked before it is opened, the
//! control plane (grants restored, timers armed) exists before any listener
//! accepts, and at the stop the listeners close before the sessions end, so
//! nothing is admitted that the shutdown would not also end.

mod listeners;
mod services;
mod stop;

use crate::config;
use crate::logging::LogFormat;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(config_path: &Path, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    crate::logging::init(log_format);
    let cfg = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.errors() {
                eprintln!("{line}");
            }
            eprintln!("jitgate: refusing to start with an invalid config");
            return Ok(ExitCode::from(1));
        }
    };
    prepare_data_dir(&cfg.data_dir)?;
    // Before anything opens the store: a second daemon on the same SQLite
    // file would hold sessions a revoke through this one cannot see.
    let _store_lock = match crate::store::lock_embedded_store(&cfg.store_url) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("jitgate: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let svc = services::Services::start(&cfg, config_path).await?;
    let listeners = listeners::start(&cfg, &svc).await?;
    warn_about_demo_tokens(&cfg);
    tracing::info!(
        addr = %listeners.admin_addr,
        instance = %cfg.instance,
        store = store_kind(&cfg.store_url),
        "jitgate ready"
    );
    crate::sd_notify::notify("READY=1\nSTATUS=serving");
    stop::wait_for_signal(&svc).await?;
    stop::shut_down(svc, listeners.tasks).await;
    Ok(ExitCode::SUCCESS)
}

/// Creates data_dir with mode 0700 (keys, certificates and the SQLite file live there).
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data_dir {}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting permissions on {}", dir.display()))?;
    Ok(())
}

fn store_kind(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

/// The example config ships demo tokens so the README walk-through works;
/// say so loudly whenever a daemon runs with them.
fn warn_about_demo_tokens(cfg: &config::Config) {
    for u in cfg.users.values() {
        if let Some(h) = &u.token_sha256 {
            if crate::secrets::DEMO_TOKEN_HASHES
                .iter()
                .any(|d| hex::encode(h) == *d)
            {
                tracing::warn!(user = %u.name, "user has a publicly known demo token from the example config; replace it (`jitgate token new`) before real use");
            }
        }
    }
}
