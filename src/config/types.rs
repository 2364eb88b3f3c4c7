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
    /// `[auth.oidc]`: None means users are the `[[users]]` only.
    pub oidc: Option<OidcConfig>,
    /// `[recording]`; None: nothing is recorded.
    pub recording: Option<RecordingConfig>,
}

/// Sign-in through the organisation's OpenID provider (docs/identity.md).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    /// The environment variable holding the client secret (confidential
    /// client); read when the client is built, never stored in the config.
    pub client_secret_env: Option<String>,
    pub redirect_url: String,
    pub username_claim: String,
    pub groups_claim: String,
    pub admin_groups: Vec<String>,
    pub session_ttl: Duration,
    pub ca_file: Option<PathBuf>,
    /// GET /auth/login?cli_port=... shows a page whose form starts the
    /// login at the IdP, instead of redirecting there (docs/identity.md):
    /// off by default, as SPEC's CLI flow goes straight to the IdP.
    pub confirm_cli_login: bool,
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
    /// Where people open the console: `[admin] public_url`, else the
    /// listen address (https with TLS). Links in notifications use it.
    pub public_url: String,
}

#[derive(Debug, Clone)]
pub struct SshListenerConfig {
    pub listen: SocketAddr,
    pub host_key: Option<PathBuf>,
    /// The SSH user CA's private key (ed25519); None: generated under
    /// data_dir.
    pub user_ca_key: Option<PathBuf>,
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
    /// The longest a grant may last from its start, extensions included
    /// (never shorter than max_duration).
    pub max_total: Duration,
    /// What every reason (request or extension) must match, if set.
    pub reason_pattern: Option<ReasonPattern>,
    /// How far ahead a request's `starts_at` may be.
    pub max_schedule_ahead: Duration,
    /// Requesters may take access at once with a reason; an approver of
    /// the policy reviews it afterwards.
    pub break_glass: bool,
}

/// `max_schedule_ahead` when a policy sets none.
pub const DEFAULT_MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(7 * 24 * 3600);

/// A policy's `reason_pattern`: the operator's source text (quoted back to
/// a requester whose reason does not match) and the compiled expression.
#[derive(Debug, Clone)]
pub struct ReasonPattern {
    pub source: String,
    pub regex: regex::Regex,
}

/// Bounds on an operator's pattern: the regex crate runs in linear time,
/// and these cap what one pattern may cost in memory to compile.
pub const REASON_PATTERN_MAX_LEN: usize = 500;
const REASON_PATTERN_SIZE_LIMIT: usize = 1 << 20;

impl ReasonPattern {
    pub fn compile(source: &str) -> Result<ReasonPattern, String> {
        if source.len() > REASON_PATTERN_MAX_LEN {
            return Err(format!(
                "reason_pattern is longer than {REASON_PATTERN_MAX_LEN} bytes"
            ));
        }
        let regex = regex::RegexBuilder::new(source)
            .size_limit(REASON_PATTERN_SIZE_LIMIT)
            .dfa_size_limit(REASON_PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("reason_pattern is not a valid regular expression: {e}"))?;
        Ok(ReasonPattern {
            source: source.to_string(),
            regex,
        })
    }

    pub fn matches(&self, reason: &str) -> bool {
        self.regex.is_match(reason)
    }
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
    pub format: NotifyFormat,
}

/// The body a receiver gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// jitgate's own JSON event (docs/operations.md, "Notifications").
    Jitgate,
    /// Slack's incoming-webhook JSON (`text` and `blocks`), which
    /// Mattermost accepts too.
    Slack,
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
        self.is_member_with(user, &[], principals)
    }

    /// Membership counting `extra` groups too: the groups the IdP gave the
    /// caller at sign-in, merged with `[groups]` (SPEC "Sign-in").
    pub fn is_member_with(&self, user: &str, extra: &[String], principals: &[Principal]) -> bool {
        principals.iter().any(|p| match p {
            Principal::User(u) => u == user,
            Principal::Group(g) => {
                extra.iter().any(|x| x == g)
                    || self
                        .groups
                        .get(g)
                        .is_some_and(|m| m.iter().any(|x| x == user))
            }
        })
    }

    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The first policy, in file order, under which `user` may request `target`.
    pub fn policy_for(&self, user: &str, target: &str) -> Option<&Policy> {
        self.policy_for_with(user, &[], target)
    }

    /// `policy_for` counting the IdP groups `extra` (see `is_member_with`).
    pub fn policy_for_with(&self, user: &str, extra: &[String], target: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| self.is_member_with(user, extra, &p.requesters) && p.matches_target(target))
    }

    /// Whether `user` approves under at least one policy (gives read access to the audit log).
    pub fn is_any_approver(&self, user: &str, extra: &[String]) -> bool {
        self.policies
            .iter()
            .any(|p| self.is_member_with(user, extra, &p.approvers))
    }

    /// Whether a grant of `user` on `target` may still be used (a reload or an
    /// admission re-checks it). A `[[users]]` user: a policy must still let
    /// them request the target. A user only the IdP knows: their IdP groups
    /// are not known here (they come with each sign-in), so a policy covering
    /// the target must name them, a `[groups]` group holding them, or a group
    /// only the IdP defines (docs/identity.md).
    pub fn may_hold(&self, user: &str, target: &str) -> bool {
        if self.users.contains_key(user) {
            return self.policy_for(user, target).is_some();
        }
        self.knows_user(user)
            && self.policies.iter().any(|p| {
                p.matches_target(target)
                    && p.requesters.iter().any(|r| match r {
                        Principal::User(u) => u == user,
                        Principal::Group(g) => self
                            .groups
                            .get(g)
                            .is_none_or(|m| m.iter().any(|x| x == user)),
                    })
            })
    }

    /// Whether `user` is someone jitgate knows: a `[[users]]` entry, or,
    /// with `[auth.oidc]`, any valid name (the IdP vouches at sign-in).
    pub fn knows_user(&self, user: &str) -> bool {
        self.users.contains_key(user) || (self.oidc.is_some() && valid_name(user))
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
            format: NotifyFormat::Jitgate,
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
