//! The four ways an operator ends access before a grant's expiry, as one
//! table for the promise tests: revoke, terminate, lock and a reload that
//! removes the target. Each must close the live sessions with the same
//! farewell and leave nothing running upstream.

use super::daemon::Daemon;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Revoke,
    Terminate,
    Lock,
    ReloadRemovingTarget,
}

pub const ALL: [Cause; 4] = [
    Cause::Revoke,
    Cause::Terminate,
    Cause::Lock,
    Cause::ReloadRemovingTarget,
];

impl Cause {
    /// The session end reason the audit records (SPEC).
    pub fn reason(self) -> &'static str {
        match self {
            Cause::Revoke => "revoked",
            Cause::Terminate => "terminated",
            Cause::Lock => "locked",
            Cause::ReloadRemovingTarget => "policy_changed",
        }
    }

    /// What the farewell says after "access to TARGET ended: ".
    pub fn farewell(self) -> &'static str {
        match self {
            Cause::Revoke => "grant revoked by dave (INC-71)",
            Cause::Terminate => "session terminated by dave (INC-71)",
            Cause::Lock => "user locked by dave (INC-71)",
            Cause::ReloadRemovingTarget => "policy changed by dave (config reloaded)",
        }
    }

    /// Ends `user`'s access to `target` (grant `gid`) this way, as dave;
    /// returns how many sessions the call confirmed closed (a reload does
    /// not count them: None).
    pub fn apply(self, d: &Daemon, user: &str, gid: &str, target: &str) -> Option<u64> {
        match self {
            Cause::Revoke => Some(d.revoke(gid, "INC-71")),
            Cause::Terminate => {
                let mut n = 0;
                for sid in d.session_ids() {
                    let r = d.terminate(&sid, "INC-71");
                    n += r["sessions_terminated"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("no count in {r}"));
                }
                Some(n)
            }
            Cause::Lock => d.lock(user, "INC-71")["sessions_terminated"].as_u64(),
            Cause::ReloadRemovingTarget => {
                let text = std::fs::read_to_string(&d.config).expect("config");
                let without = without_target(&text, target);
                assert_ne!(without, text, "target {target} not found in the config");
                std::fs::write(&d.config, without).expect("write config");
                d.reload();
                None
            }
        }
    }
}

/// `config` without the `[[targets]]` section named `name`.
pub fn without_target(config: &str, name: &str) -> String {
    let mut out = String::new();
    for (i, part) in config.split("\n[").enumerate() {
        let it = part.starts_with("[targets]]")
            && part
                .lines()
                .any(|l| l.trim() == format!("name = \"{name}\""));
        if it {
            continue;
        }
        if i > 0 {
            out.push_str("\n[");
        }
        out.push_str(part);
    }
    out
}

/// The `session.ended` audit events' reasons, as dave sees them.
pub fn ended_reasons(d: &Daemon) -> Vec<String> {
    let a = d
        .get("/v1/audit?limit=1000", Some(super::daemon::DAVE))
        .expect("audit")
        .json();
    a["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["action"] == "session.ended")
                .map(|e| e["detail"]["reason"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}
