//! The validated configuration the daemon runs on.
//!
//! Built only by `validate::build`, so holding a `Config` means every name
//! reference resolves, every duration parsed and every policy is satisfiable.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub data_dir: PathBuf,
    pub instance: String,
    pub request_ttl: Duration,
    pub shutdown_timeout: Duration,
    pub store_url: String,
    pub store_max_connections: u32,
    pub admin: AdminConfig,
    pub metrics_listen: Option<SocketAddr>,
    pub ssh: Option<SshListenerConfig>,
    pub postgres: Option<PostgresListenerConfig>,
    pub tcp: Option<TcpListenerConfig>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub users: BTreeMap<String, User>,
    pub targets: BTreeMap<String, Target>,
    /// In file order: the first policy that matches a request governs it.
    pub policies: Vec<Policy>,
    pub notify: Vec<Notify>,
    /// `[audit] signing_key`: the checkpoint signing key, outside the store;
    /// None means `audit-signing.key` under data_dir.
    pub audit_signing_key: Option<PathBuf>,
    /// `[recording]`; None: nothing is recorded.
    pub recording: Option<RecordingConfig>,
}

/// What is recorded inside sessions, and where (SPEC "Recording").
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    /// Already resolved against data_dir.
    pub dir: PathBuf,
    pub ssh: SshRecording,
    /// Whether PostgreSQL statements are recorded.
    pub postgres: bool,
    pub on_failure: OnFailure,
    pub retention: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshRecording {
    Off,
    /// Channels with a pty.
    Terminal,
    /// Also exec and subsystem channels.
    Full,
}

/// What happens to a session whose recording cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Refused, or ended with reason `error`.
    Refuse,
    /// Goes on; the failure is audited.
    Continue,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct SshListenerConfig {
    pub listen: SocketAddr,
    pub host_key: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PostgresListenerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub allow_plaintext: bool,
}

#[derive(Debug, Clone)]
pub struct TcpListenerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub token_sha256: Option<[u8; 32]>,
    pub ssh_keys: Vec<String>,
    pub admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Postgres,
    Ssh,
    Tcp,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Postgres => "postgres",
            TargetKind::Ssh => "ssh",
            TargetKind::Tcp => "tcp",
        }
    }

    pub fn parse(s: &str) -> Option<TargetKind> {
        match s {
            "postgres" => Some(TargetKind::Postgres),
            "ssh" => Some(TargetKind::Ssh),
            "tcp" => Some(TargetKind::Tcp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTls {
    Disable,
    Prefer,
    Require,
    VerifyFull,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub key_file: Option<PathBuf>,
    pub tls: UpstreamTls,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    /// host:port; resolved at connect time so DNS changes are honoured.
    pub address: String,
    pub host_key: Option<String>,
    pub upstream: Upstream,
    /// ssh targets: the `HOST:PORT` destinations that direct-tcpip (`ssh -L`,
    /// `ssh -W`) may open through the target; empty refuses them all.
    pub forwarding: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Principal {
    User(String),
    Group(String),
}

impl Principal {
    pub fn parse(s: &str) -> Principal {
        match s.strip_prefix("group:") {
            Some(g) => Principal::Group(g.to_string()),
            None => Principal::User(s.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub requesters: Vec<Principal>,
    pub targets: Vec<String>,
    pub approvers: Vec<Principal>,
    pub approvals_required: u32,
    pub max_duration: Duration,
    pub default_duration: Duration,
    pub idle_timeout: Option<Duration>,
    pub require_reason: bool,
    /// Sorted longest first, so warnings fire in order.
    pub warn_before: Vec<Duration>,
    pub max_sessions_per_grant: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Notify {
    /// Also the receiver's identity in the outbox: validation keeps urls unique.
    pub url: String,
    /// Event names, or "*" for all.
    pub events: BTreeSet<String>,
    /// Without it deliveries carry no signature (a warning is logged at start).
    pub secret_env: Option<String>,
    pub timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
}

impl Notify {
    /// `audit.checkpoint` (the audit witness) only when named: a channel
    /// subscribed to everything should not get a signature every 100 events.
    pub fn wants(&self, event: &str) -> bool {
        self.events.contains(event)
            || (self.events.contains("*") && event != super::events::AUDIT_CHECKPOINT)
    }
}

impl Config {
    /// Users named by a list of principals, groups expanded.
    pub fn expand(&self, principals: &[Principal]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for p in principals {
            match p {
                Principal::User(u) => {
                    out.insert(u.clone());
                }
                Principal::Group(g) => {
                    if let Some(members) = self.groups.get(g) {
                        out.extend(members.iter().cloned());
                    }
                }
            }
        }
        out
    }

    pub fn is_member(&self, user: &str, principals: &[Principal]) -> bool {
        principals.iter().any(|p| match p {
            Principal::User(u) => u == user,
            Principal::Group(g) => self
                .groups
                .get(g)
                .is_some_and(|m| m.iter().any(|x| x == user)),
        })
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The first policy, in file order, under which `user` may request `target`.
    pub fn policy_for(&self, user: &str, target: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| self.is_member(user, &p.requesters) && p.matches_target(target))
    }

    /// Whether `user` approves under at least one policy (gives read access to the audit log).
    pub fn is_any_approver(&self, user: &str) -> bool {
        self.policies
            .iter()
            .any(|p| self.is_member(user, &p.approvers))
    }
}

impl Policy {
    pub fn matches_target(&self, target: &str) -> bool {
        self.targets.iter().any(|pat| glob_match(pat, target))
    }
}

/// Shell-style glob with `*` and `?`; names are ASCII so bytes suffice.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// `[a-z0-9][a-z0-9._-]{0,62}`
pub fn valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("prod-*", "prod-db"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("p?od-*-1", "prod-web-1"));
        assert!(!glob_match("prod-*", "staging-db"));
        assert!(!glob_match("cache", "cache2"));
        assert!(glob_match("*a*b", "xxaxxb"));
        assert!(!glob_match("*a*b", "xxaxxbc"));
    }

    #[test]
    fn the_audit_witness_is_subscribed_only_by_name() {
        let n = |events: &[&str]| Notify {
            url: "http://x".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            secret_env: None,
            timeout: Duration::from_secs(1),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(1),
            give_up_after: Duration::from_secs(1),
        };
        assert!(n(&["*"]).wants("grant.ended"));
        assert!(!n(&["*"]).wants("audit.checkpoint"));
        assert!(n(&["audit.checkpoint"]).wants("audit.checkpoint"));
        assert!(!n(&["audit.checkpoint"]).wants("grant.ended"));
    }

    #[test]
    fn names_follow_the_spec_pattern() {
        assert!(valid_name("prod-db.1_x"));
        assert!(valid_name("0"));
        assert!(!valid_name(""));
        assert!(!valid_name("-a"));
        assert!(!valid_name("Alice"));
        assert!(!valid_name(&"a".repeat(64)));
        assert!(valid_name(&"a".repeat(63)));
    }
}
