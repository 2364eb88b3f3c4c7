//! The command line: daemon commands and client subcommands that talk to the
//! admin API. Exit codes: 0 success, 1 runtime or API error, 2 usage error.

mod api;
mod audit;
mod commands;
mod format;
mod table;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use commands::client_command;

#[derive(Parser)]
#[command(
    name = "jitgate",
    version,
    about = "Just-in-time access proxy: no session outlives its grant"
)]
pub struct Cli {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct ApiArgs {
    /// Admin API URL.
    #[arg(
        long,
        global = true,
        env = "JITGATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API token (prefer the environment variable: arguments show up in `ps`).
    #[arg(long, global = true, env = "JITGATE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate for an https admin URL.
    #[arg(long, global = true, env = "JITGATE_CA")]
    pub ca: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Validate a config file: exit 0, or print every error with its location and exit 1.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// API token helpers.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Ask for access to a target.
    Request {
        target: String,
        /// Duration such as 30m or 1h30m (default: the policy's default_duration).
        #[arg(long = "for")]
        duration: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List requests.
    Requests {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Approve a request.
    Approve {
        request_id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a request.
    Deny {
        request_id: String,
        #[arg(long)]
        reason: String,
    },
    /// Cancel your own pending request.
    Cancel { request_id: String },
    /// List grants.
    Grants {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Issue a connect secret for a grant and print it once; earlier
    /// secrets stay valid unless --rotate.
    Secret {
        grant_id: String,
        /// Revoke the grant's earlier secrets (open sessions stay open).
        #[arg(long)]
        rotate: bool,
    },
    /// Revoke a grant; its live sessions are closed before this returns.
    Revoke {
        grant_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Active sessions, with time remaining.
    Sessions {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        target: Option<String>,
    },
    /// End one session now.
    Terminate {
        session_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lock a user: revoke their grants, close their sessions, refuse new ones.
    Lock {
        user: String,
        #[arg(long)]
        reason: String,
    },
    /// Unlock a user.
    Unlock { user: String },
    /// Show the audit log, or verify its hash chain.
    Audit {
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        after: Option<i64>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Who the token belongs to, and the proxy's TLS fingerprint.
    Whoami,
    /// Open a local port that tunnels each connection to TARGET through the proxy.
    Connect(crate::proxy::tcp::connect::ConnectArgs),
}

#[derive(Subcommand)]
pub enum TokenAction {
    /// Print a fresh random API token and the SHA-256 to put in the config.
    New,
}

pub fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    match crate::config::load(path) {
        Ok(c) => {
            println!(
                "{}: ok ({} users, {} targets, {} policies)",
                path.display(),
                c.users.len(),
                c.targets.len(),
                c.policies.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for line in e.errors() {
                eprintln!("{line}");
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
            println!("token:        {t}");
            println!("token_sha256: {h}");
            eprintln!("Give the token to its user once; put only token_sha256 in the config.");
            Ok(ExitCode::SUCCESS)
        }
    }
}
