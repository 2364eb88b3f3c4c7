//! `[recording]`: the words of each mode, the retention, and a dir that
//! stays under data_dir when relative (SPEC: "relative to data_dir").

use super::super::locate::Path;
use super::super::model::RecordingSection;
use super::super::types::*;
use super::{k, p, Checker};
use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

fn at(key: &str) -> Path {
    p(&[k("recording"), k(key)])
}

pub(super) fn check_recording(
    c: &mut Checker,
    r: &RecordingSection,
    data_dir: &FsPath,
) -> Option<RecordingConfig> {
    let dir = r.dir.as_deref().unwrap_or("recordings");
    let dir = if dir.trim().is_empty() {
        c.err(at("dir"), "recording dir must not be empty");
        PathBuf::new()
    } else if FsPath::new(dir).is_absolute() {
        PathBuf::from(dir)
    } else {
        data_dir.join(dir)
    };
    let ssh = match r.ssh.as_deref().unwrap_or("terminal") {
        "off" => SshRecording::Off,
        "terminal" => SshRecording::Terminal,
        "full" => SshRecording::Full,
        other => {
            c.err(
                at("ssh"),
                format!("recording ssh {other:?} must be off, terminal or full"),
            );
            SshRecording::Off
        }
    };
    let postgres = match r.postgres.as_deref().unwrap_or("statements") {
        "off" => false,
        "statements" => true,
        other => {
            c.err(
                at("postgres"),
                format!("recording postgres {other:?} must be off or statements"),
            );
            false
        }
    };
    let on_failure = match r.on_failure.as_deref().unwrap_or("refuse") {
        "refuse" => OnFailure::Refuse,
        "continue" => OnFailure::Continue,
        other => {
            c.err(
                at("on_failure"),
                format!("recording on_failure {other:?} must be refuse or continue"),
            );
            OnFailure::Refuse
        }
    };
    let retention = match &r.retention {
        Some(s) => c.duration(at("retention"), s).unwrap_or(DEFAULT_RETENTION),
        None => DEFAULT_RETENTION,
    };
    Some(RecordingConfig {
        dir,
        ssh,
        postgres,
        on_failure,
        retention,
    })
}
