//! The TOML file as written by the operator, before validation.
//!
//! Every struct denies unknown keys so that a typo is an error with a location,
//! not a silently ignored setting. Durations stay strings here so that
//! validation can report every bad one at once, with its location.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The keys each table of the file may hold, by section path (array indices
/// left out: `targets.upstream` is the `upstream` of any `[[targets]]`).
/// The lenient first pass (`lenient.rs`) reports and removes every other key
/// so one pass finds them all; a unit test checks each list against serde's
/// own refusal of an unknown key, so this cannot drift from the structs below.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "server",
            "store",
            "admin",
            "metrics",
            "listeners",
            "groups",
            "users",
            "targets",
            "policies",
            "notify",
            "audit",
            "auth",
            "recording",
        ],
    ),
    (
        "server",
        &["data_dir", "instance", "request_ttl", "shutdown_timeout"],
    ),
    ("store", &["url", "max_connections"]),
    ("admin", &["listen", "tls_cert", "tls_key", "public_url"]),
    ("metrics", &["listen"]),
    ("audit", &["signing_key"]),
    ("auth", &["oidc"]),
    (
        "auth.oidc",
        &[
            "issuer",
            "client_id",
            "client_secret_env",
            "redirect_url",
            "username_claim",
            "groups_claim",
            "admin_groups",
            "session_ttl",
            "ca_file",
            "confirm_cli_login",
        ],
    ),
    (
        "recording",
        &["dir", "ssh", "postgres", "on_failure", "retention"],
    ),
    ("listeners", &["ssh", "postgres", "tcp"]),
    ("listeners.ssh", &["listen", "host_key", "user_ca_key"]),
    (
        "listeners.postgres",
        &["listen", "tls_cert", "tls_key", "allow_plaintext"],
    ),
    ("listeners.tcp", &["listen", "tls_cert", "tls_key"]),
    ("users", &["name", "token_sha256", "ssh_keys", "admin"]),
    (
        "targets",
        &[
            "name",
            "kind",
            "address",
            "host_key",
            "upstream",
            "forwarding",
        ],
    ),
    (
        "targets.upstream",
        &["user", "password_env", "key_file", "tls", "ca_file"],
    ),
    (
        "policies",
        &[
            "name",
            "requesters",
            "targets",
            "approvers",
            "approvals_required",
            "max_duration",
            "default_duration",
            "idle_timeout",
            "require_reason",
            "warn_before",
            "max_sessions_per_grant",
            "max_total",
            "reason_pattern",
            "max_schedule_ahead",
            "break_glass",
        ],
    ),
    (
        "notify",
        &[
            "url",
            "events",
            "secret_env",
            "timeout",
            "retry_initial",
            "retry_max",
            "give_up_after",
            "format",
        ],
    ),
];

/// Sections whose keys are names the operator chooses (`[groups]`).
pub const FREE_FORM: &[&str] = &["groups"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
    #[serde(default)]
    pub listeners: ListenersSection,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    #[serde(default)]
    pub targets: Vec<TargetEntry>,
    #[serde(default)]
    pub policies: Vec<PolicyEntry>,
    #[serde(default)]
    pub notify: Vec<NotifyEntry>,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub auth: AuthSection,
    pub recording: Option<RecordingSection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub oidc: Option<OidcEntry>,
}

/// `[auth.oidc]`: sign-in through the organisation's OpenID provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcEntry {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_env: Option<String>,
    pub redirect_url: String,
    pub username_claim: Option<String>,
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub admin_groups: Vec<String>,
    pub session_ttl: Option<String>,
    pub ca_file: Option<String>,
    /// Whether `jitgate login` shows a confirmation page before the IdP;
    /// default false (SPEC's loopback flow, straight to the IdP).
    #[serde(default)]
    pub confirm_cli_login: bool,
}

/// `[recording]`: present means on, with SPEC's defaults for what is left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingSection {
    /// Relative to data_dir; default "recordings".
    pub dir: Option<String>,
    /// off | terminal | full; default terminal.
    pub ssh: Option<String>,
    /// off | statements; default statements.
    pub postgres: Option<String>,
    /// refuse | continue; default refuse.
    pub on_failure: Option<String>,
    /// Default 90d.
    pub retention: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Ed25519 PKCS#8 key that signs audit checkpoints; default: generated
    /// as `audit-signing.key` under data_dir. Instances sharing a store share it.
    pub signing_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Name of this instance in the shared session table; defaults to the host name.
    pub instance: Option<String>,
    /// How long a request may stay pending before it expires (SPEC: default 24h).
    pub request_ttl: Option<String>,
    /// Upper bound for ending all sessions at SIGTERM before the process exits anyway.
    pub shutdown_timeout: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            data_dir: default_data_dir(),
            instance: None,
            request_ttl: None,
            shutdown_timeout: None,
        }
    }
}

fn default_data_dir() -> String {
    "./data".to_string()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// Defaults to an SQLite file under data_dir.
    pub url: Option<String>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// The console's address as people reach it (links in notifications).
    pub public_url: Option<String>,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: default_admin_listen(),
            tls_cert: None,
            tls_key: None,
            public_url: None,
        }
    }
}

fn default_admin_listen() -> String {
    "127.0.0.1:8080".to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    pub listen: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersSection {
    pub ssh: Option<SshListener>,
    pub postgres: Option<PostgresListener>,
    pub tcp: Option<TcpListener>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshListener {
    pub listen: String,
    pub host_key: Option<String>,
    pub user_ca_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresListener {
    pub listen: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Plaintext client connections are refused unless this is set explicitly.
    #[serde(default)]
    pub allow_plaintext: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpListener {
    pub listen: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub token_sha256: Option<String>,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    pub name: String,
    pub kind: String,
    pub address: String,
    pub host_key: Option<String>,
    pub upstream: Option<UpstreamEntry>,
    #[serde(default)]
    pub forwarding: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamEntry {
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub key_file: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    pub name: String,
    pub requesters: Vec<String>,
    pub targets: Vec<String>,
    #[serde(default)]
    pub approvers: Vec<String>,
    pub approvals_required: u32,
    pub max_duration: String,
    pub default_duration: Option<String>,
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub require_reason: bool,
    #[serde(default)]
    pub warn_before: Vec<String>,
    pub max_sessions_per_grant: Option<u32>,
    /// A grant's whole length, extensions included; default max_duration.
    pub max_total: Option<String>,
    /// A regular expression every reason must match (a ticket id).
    pub reason_pattern: Option<String>,
    /// How far ahead a request may ask to start; default 7d.
    pub max_schedule_ahead: Option<String>,
    /// Requesters may take access at once, reviewed afterwards.
    #[serde(default)]
    pub break_glass: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyEntry {
    pub url: String,
    pub events: Vec<String>,
    pub secret_env: Option<String>,
    /// Whole-delivery bound (connect, TLS, request, response head); default 5s.
    pub timeout: Option<String>,
    /// First retry delay, doubled per failed attempt; default 1s.
    pub retry_initial: Option<String>,
    /// Longest retry delay; default 10m.
    pub retry_max: Option<String>,
    /// A delivery still failing this long after its event is dropped; default 24h.
    pub give_up_after: Option<String>,
    /// "jitgate" (default) or "slack".
    pub format: Option<String>,
}
