//! The command line: daemon commands and client subcommands that talk to the
//! admin API. Exit codes: 0 success, 1 runtime or API error, 2 usage error.

mod api;
mod audit;
pub mod client_dir;
mod commands;
mod format;
mod grant_for;
mod login;
mod psql;
mod recordings;
pub mod signin_store;
mod ssh;
pub mod ssh_identity;
mod stdout;
mod table;
mod wait;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use commands::client_command;
pub use format::{note, StdoutClosed};
use format::{out, out_bytes};

#[derive(Parser)]
#[command(
    name = "jitgate",
    version,
    about = "Just-in-time access proxy: no session outlives its grant",
    after_help = "Client commands read JITGATE_URL, JITGATE_TOKEN and JITGATE_CA; \
                  their options may also be given before the command name.\n\
                  Exit codes: 0 success, 1 runtime or API error, 2 usage error."
)]
pub struct Cli {
    /// Accepted here too (`jitgate --json grants`) for scripts written that way.
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How a client command reaches the admin API. Flattened into each client
/// command (so `serve --help` does not list them) and into the top level.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Client options")]
pub struct ApiArgs {
    /// Admin API URL.
    #[arg(
        long,
        env = "JITGATE_URL",
        default_value = DEFAULT_URL,
        value_name = "URL"
    )]
    pub url: String,
    /// API token (prefer the environment variable: arguments show up in `ps`).
    #[arg(
        long,
        env = "JITGATE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// CA certificate for an https admin URL.
    #[arg(long, env = "JITGATE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Whether the URL came from --url or JITGATE_URL rather than the
    /// default: without one, the most recent saved sign-in names the server.
    #[arg(skip)]
    pub url_given: bool,
}

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

use crate::logging::LogFormat;

#[derive(clap::Args, Clone)]
pub struct ConnectArgs {
    /// Target name, as in the config.
    pub target: String,
    /// The proxy's TCP tunnel listener, HOST:PORT.
    #[arg(long)]
    pub proxy: String,
    /// Local address to listen on.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Environment variable holding the connect secret.
    #[arg(long, default_value = "JITGATE_SECRET")]
    pub secret_env: String,
    /// CA certificate that signed the proxy's certificate.
    #[arg(long, env = "JITGATE_CA")]
    pub ca: Option<PathBuf>,
    /// Pin the proxy's certificate instead: sha256:HEX (from `jitgate whoami`).
    #[arg(long)]
    pub fingerprint: Option<String>,
}

impl From<ConnectArgs> for crate::proxy::tcp::connect::Options {
    fn from(a: ConnectArgs) -> Self {
        Self {
            target: a.target,
            proxy: a.proxy,
            listen: a.listen,
            secret_env: a.secret_env,
            ca: a.ca,
            fingerprint: a.fingerprint,
        }
    }
}

/// Request states, for `requests --state`.
#[derive(Clone, Copy, ValueEnum)]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Expired,
}

/// `--at`: an RFC 3339 time as given, or `+DURATION` turned into the
/// RFC 3339 time that far from now (the server checks the bounds).
fn start_time_arg(s: &str) -> Result<String, String> {
    if let Some(d) = s.strip_prefix('+') {
        let d = crate::duration::parse(d).map_err(|e| e.to_string())?;
        let at = crate::clock::now_ms() + d.as_millis() as i64;
        return Ok(crate::clock::rfc3339(at));
    }
    humantime::parse_rfc3339_weak(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not an RFC 3339 time or +DURATION: {e}"))
}

/// A break-glass review's verdict.
#[derive(Clone, Copy, ValueEnum)]
pub enum Verdict {
    Justified,
    Unjustified,
}

/// Grant states, for `grants --state`.
#[derive(Clone, Copy, ValueEnum)]
pub enum GrantState {
    Scheduled,
    Active,
    Expired,
    Revoked,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// Config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Log line format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Validate a config file: exit 0, or print every error with its location and exit 1.
    CheckConfig {
        /// Config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// API token helpers.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Ask for access to a target.
    Request {
        /// Target name, as in the config.
        target: String,
        /// Duration such as 30m or 1h30m (units s, m, h, d; default: the policy's default_duration).
        #[arg(long = "for", value_name = "DURATION", value_parser = crate::duration::validate_arg)]
        duration: Option<String>,
        /// Why access is needed (shown to approvers; some policies require it).
        #[arg(long, default_value = "")]
        reason: String,
        /// Start later (scheduled access): an RFC 3339 time such as
        /// 2026-12-05T09:00:00Z, or +DURATION from now such as +2h.
        #[arg(long = "at", value_name = "TIME", value_parser = start_time_arg)]
        at: Option<String>,
        /// Take access now without an approver (policies with
        /// break_glass = true); needs --reason; reviewed afterwards.
        #[arg(long = "break-glass")]
        break_glass: bool,
        /// Wait for the decision and print the grant; exit 1 when denied,
        /// expired or still pending after --wait-timeout.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, value_name = "DURATION", default_value = "15m", requires = "wait", value_parser = crate::duration::validate_arg)]
        wait_timeout: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run ssh to TARGET through the proxy, under your active grant, with
    /// a certificate and the proxy's pinned host key.
    Ssh {
        /// Target name, as in the config.
        target: String,
        /// Passed to ssh after the destination (options, then a command).
        #[arg(last = true, value_name = "SSH_ARGS")]
        args: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run psql on TARGET through the proxy, under your active grant, with
    /// a fresh connect secret and verified TLS.
    Psql {
        /// Target name, as in the config.
        target: String,
        /// Passed to psql (e.g. -d DB, -c SQL).
        #[arg(last = true, value_name = "PSQL_ARGS")]
        args: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List requests.
    Requests {
        /// Only requests in this state.
        #[arg(long, value_enum)]
        state: Option<RequestState>,
        /// At most this many rows.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Approve a request.
    Approve {
        /// The request's id (req_...).
        request_id: String,
        /// Note recorded with the approval.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Deny a request.
    Deny {
        /// The request's id (req_...).
        request_id: String,
        /// Why it is denied (shown to the requester).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel your own pending request.
    Cancel {
        /// The request's id (req_...).
        request_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List grants.
    Grants {
        /// Only grants in this state.
        #[arg(long, value_enum)]
        state: Option<GrantState>,
        /// Only this user's grants.
        #[arg(long)]
        user: Option<String>,
        /// Only grants for this target.
        #[arg(long)]
        target: Option<String>,
        /// At most this many rows.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Issue a connect secret for a grant and print it once; earlier
    /// secrets stay valid unless --rotate.
    Secret {
        /// The grant's id (gr_...).
        grant_id: String,
        /// Revoke the grant's earlier secrets (open sessions stay open).
        #[arg(long)]
        rotate: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Ask for more time on your own grant; live sessions keep running
    /// (no reconnect) and follow the new end once it is approved.
    Extend {
        /// The grant's id (gr_...).
        grant_id: String,
        /// Time to add, e.g. 30m (default: the policy's default_duration).
        #[arg(long = "for", value_name = "DURATION", value_parser = crate::duration::validate_arg)]
        duration: Option<String>,
        /// Why more time is needed (checked against the policy's reason_pattern).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Record your verdict on a break-glass grant (approvers of its policy).
    Review {
        /// The grant's id (gr_...).
        grant_id: String,
        /// Whether taking access without approval was justified.
        #[arg(long, value_enum)]
        verdict: Verdict,
        /// Note recorded with the verdict.
        #[arg(long, default_value = "")]
        comment: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Revoke a grant; its live sessions are closed before this returns.
    Revoke {
        /// The grant's id (gr_...).
        grant_id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Active sessions, with time remaining.
    Sessions {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
        /// Only sessions to this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// End one session now.
    Terminate {
        /// The session's id.
        session_id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Lock a user: revoke their grants, close their sessions, refuse new ones.
    Lock {
        /// User name, as in the config.
        user: String,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Unlock a user.
    Unlock {
        /// User name, as in the config.
        user: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show the audit log, or verify its hash chain.
    Audit {
        /// Recompute every hash locally and check the chain and its signed
        /// checkpoints; exit 1 if broken.
        #[arg(long)]
        verify: bool,
        /// With --verify: also exit 1 unless a signed checkpoint vouches for
        /// every event, checked with a pinned key (events after the newest
        /// checkpoint, or no pinned key, fail).
        #[arg(long, requires = "verify")]
        strict: bool,
        /// Print the key the daemon signs checkpoints with, for auditors to keep.
        #[arg(long, conflicts_with = "verify")]
        public_key: bool,
        /// With --verify: the saved public key to check checkpoints with (or the
        /// key itself in JITGATE_AUDIT_PUBKEY); without one, the server's key is
        /// used and the result says the key was not pinned.
        #[arg(long, value_name = "FILE", requires = "verify")]
        public_key_file: Option<std::path::PathBuf>,
        /// Only events after this sequence number.
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        /// At most this many events.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Recorded sessions the caller may see (admins, approvers of the policy).
    Recordings {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
        /// Only sessions to this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Replay a recorded session in the terminal, with its timing.
    Play {
        /// The session's id.
        session_id: String,
        /// Replay this many times faster (pauses are capped at 2s anyway).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Follow a live session's recording until the session ends.
    Watch {
        /// The session's id.
        session_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Sign in through the organisation's IdP (a browser), and save the sign-in.
    Login {
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// End this sign-in at the server and forget it here.
    Logout {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Who you are: user, groups, admin, how signed in, until when; and the proxy's addresses and keys.
    Whoami {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Open a local port that tunnels each connection to TARGET through the proxy.
    Connect(ConnectArgs),
    /// Print a shell completion script (e.g. `jitgate completions bash > /etc/bash_completion.d/jitgate`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of jitgate or of one of its commands (`jitgate man | man -l -`).
    Man {
        /// A command, for its own page (jitgate-COMMAND(1)).
        command: Option<String>,
    },
}

impl Command {
    /// The API options of a client command; `None` for the others.
    pub fn api(&self) -> Option<&ApiArgs> {
        match self {
            Command::Request { api, .. }
            | Command::Requests { api, .. }
            | Command::Approve { api, .. }
            | Command::Deny { api, .. }
            | Command::Cancel { api, .. }
            | Command::Grants { api, .. }
            | Command::Secret { api, .. }
            | Command::Extend { api, .. }
            | Command::Review { api, .. }
            | Command::Revoke { api, .. }
            | Command::Sessions { api, .. }
            | Command::Terminate { api, .. }
            | Command::Lock { api, .. }
            | Command::Unlock { api, .. }
            | Command::Audit { api, .. }
            | Command::Recordings { api, .. }
            | Command::Play { api, .. }
            | Command::Watch { api, .. }
            | Command::Whoami { api }
            | Command::Ssh { api, .. }
            | Command::Psql { api, .. }
            | Command::Login { api, .. }
            | Command::Logout { api } => Some(api),
            Command::Serve { .. }
            | Command::CheckConfig { .. }
            | Command::Token { .. }
            | Command::Connect(_)
            | Command::Completions { .. }
            | Command::Man { .. } => None,
        }
    }
}

/// The API options in effect: each one from the command line after the
/// command name, else before it, else its environment variable or default.
pub fn effective_api_args(
    top: &ApiArgs,
    top_m: &ArgMatches,
    sub: &ApiArgs,
    sub_m: &ArgMatches,
) -> ApiArgs {
    let typed = |m: &ArgMatches, id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let pick = |id: &str| typed(sub_m, id) || !typed(top_m, id);
    ApiArgs {
        url: if pick("url") { &sub.url } else { &top.url }.clone(),
        token: if pick("token") {
            &sub.token
        } else {
            &top.token
        }
        .clone(),
        ca: if pick("ca") { &sub.ca } else { &top.ca }.clone(),
        json: sub.json || top.json,
        url_given: [top_m, sub_m].iter().any(|m| {
            matches!(
                m.value_source("url"),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        }),
    }
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Print a fresh random API token and the SHA-256 to put in the config.
    New,
}

pub fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    match crate::config::load(path) {
        Ok(c) => {
            out(&format!(
                "{}: ok ({} users, {} targets, {} policies)",
                path.display(),
                c.users.len(),
                c.targets.len(),
                c.policies.len()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for line in e.errors() {
                note(&line.to_string());
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub fn token(action: TokenAction) -> anyhow::Result<ExitCode> {
    match action {
        TokenAction::New => {
            let t = crate::secrets::new_api_token();
            let h = hex::encode(crate::secrets::sha256(t.as_bytes()));
            out(&format!("token:        {t}\ntoken_sha256: {h}"))?;
            note("Give the token to its user once; put only token_sha256 in the config.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `jitgate completions SHELL`: the script clap_complete derives from the
/// same definitions as the parser, so it cannot drift.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "jitgate", &mut buf);
    out_bytes(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// `jitgate man [COMMAND]`: roff from the same definitions as the parser.
pub fn man(command: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match command {
        None => cmd,
        Some(name) => match cmd.find_subcommand(name) {
            Some(sub) => sub
                .clone()
                .name(format!("jitgate-{name}"))
                .version(env!("CARGO_PKG_VERSION")),
            None => {
                note(&format!(
                    "error: no command {name:?} (see `jitgate --help`)"
                ));
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    out_bytes(&buf)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests;
